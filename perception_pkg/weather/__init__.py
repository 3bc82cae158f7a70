"""Adverse-weather restoration core (numpy; no ROS): conditions, classical baselines, the condition
classifier, the gate and the card-driven restorer. The message level is ``pipelines/weather.py``."""

from perception_pkg.weather.baselines import BASELINES, auto_exposure, clahe_luminance, dark_channel_dehaze
from perception_pkg.weather.conditions import ADVERSE, CONDITIONS
from perception_pkg.weather.restorer import (
    MODES,
    Classification,
    ConditionClassifier,
    Gate,
    Restorer,
    WeatherRestorer,
    WeatherResult,
    resolve_card,
)

__all__ = [
    "ADVERSE",
    "BASELINES",
    "CONDITIONS",
    "MODES",
    "Classification",
    "ConditionClassifier",
    "Gate",
    "Restorer",
    "WeatherRestorer",
    "WeatherResult",
    "auto_exposure",
    "clahe_luminance",
    "dark_channel_dehaze",
    "resolve_card",
]

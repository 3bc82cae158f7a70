"""``perception train weather``: the ForkGAN restorer (real-time variant), its condition classifier and the
Zero-DCE++ baseline, trained together on the same simulator pairs; ONNX export, parity and cards.

Several generators can train in lockstep on the very same batches (``--variants``): the ablation of the
loss terms is then a like-for-like comparison (same data, same steps, same seed). Each variant is named
for the terms it adds, cumulatively:

=============  ==================================================================================
``paired``     paired L1 of G^t_y(E_x(x)) against the clean frame (only E_x and G^t_y train)
``adv``        + LSGAN on the restored frame (multi-scale discriminator D_y)
``cycle``      + both ForkGAN directions: cycle (x -> y -> x, y -> x -> y), reconstruction (G^r), D_x
``perceptual`` + the task-aware perceptual loss on the shipped detector's backbone features
``full``       + the latent domain classifier D_d (adversarial and classification branches) and the
               latent perceptual consistency |E_y(G^t_y(z_x)) - z_x| of the paper: all of ForkGAN
``full@fog``   ``full`` trained on the fog share of every batch only (a per-condition specialist;
               likewise rain, snow, night) for the one-model-or-routed-specialists decision
``full#paper`` ``full`` at the paper's widths (ForkConfig.paper), on the first ``--paper-crops`` crops
               of every batch (it costs about 75x the real-time generator per crop)
=============  ==================================================================================

The unpaired GAN terms never see pairs: the clean images they use are the batch's clean frames rolled by
one item (another frame), so the model can later be fine-tuned on unpaired real photos. Loss weights
(paper: cycle and reconstruction 10): paired 10, adversarial 1, cycle 10, reconstruction 10, perceptual
1, domain classification 1, latent consistency 1.

``--time-budget-s`` sizes the run for a lent accelerator: after 10 steps the step count is fixed from
the measured rate (logged, and written to training.json so ``--steps`` repeats the run). Weights land in
``OUT/weights.pt`` (checkpointed every ``--checkpoint-s``); ``--export`` (or ``perception train weather
--export-only --weights OUT/weights.pt``) writes ``model.onnx`` + ``card.yaml`` (the shipped variant),
``classifier.onnx`` + ``classifier_card.yaml``, ``zerodce.onnx`` + ``zerodce_card.yaml``, and one card
per other variant under ``OUT/variants/<name>/`` (for ``perception eval weather``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from perception_pkg.training.weather_data import (
    CleanSpec,
    PairConfig,
    PairDataset,
    collate,
    load_clean,
    render_clean,
)
from perception_pkg.training.weather_losses import DetectorFeatures, lsgan_d, lsgan_g, perceptual, smoothness
from perception_pkg.training.weather_net import (
    ConditionNet,
    CurveNet,
    DeployedRestorer,
    DomainClassifier,
    ForkConfig,
    ForkGenerator,
    MultiScaleDiscriminator,
    count_macs,
    count_params,
    restorer_cost,
)
from perception_pkg.weather.conditions import ADVERSE, CONDITIONS

log = logging.getLogger("perception_pkg.training.weather")

WEIGHTS = {"pair": 10.0, "adv": 1.0, "cyc": 10.0, "rec": 10.0, "per": 1.0, "cls": 1.0, "lat": 1.0}
LADDER = ("paired", "adv", "cycle", "perceptual", "full")
EXPORT_HW = (480, 640)
# the shipped restorer's trunk runs on a 4x average-pooled frame (weather_net.DeployedRestorer): chosen on
# the tuning seeds (fog AP50 and PSNR equal or better than the full-resolution trunk, 10x less work)
DEPLOY_TRUNK_SCALE = 4
CLASSIFIER_HW = (120, 160)


@dataclass(frozen=True)
class Terms:
    adv: bool = False
    cycle: bool = False
    perceptual: bool = False
    domain: bool = False
    condition: str | None = None  # specialists: train on this condition's share of the batch only


TERMS = {"adv": "adv", "cycle": "cycle", "per": "perceptual", "domain": "domain"}


def terms_of(name: str) -> Terms:
    """A ladder name (cumulative) or ``pair+TERM+...`` (exactly those terms: adv, cycle, per, domain;
    domain needs cycle), each with an optional ``@condition`` and ``#paper``."""
    base, _, cond = name.split("#")[0].partition("@")
    if base.startswith("pair+"):
        picked = base.split("+")[1:]
        bad = [t for t in picked if t not in TERMS] + (
            ["domain without cycle"] if "domain" in picked and "cycle" not in picked else []
        )
        if bad or (cond and cond not in ADVERSE):
            raise ValueError(f"variant {name!r}: unknown {bad or cond}; terms {list(TERMS)}")
        return Terms(**{TERMS[t]: True for t in picked}, condition=cond or None)
    if base not in LADDER:
        raise ValueError(f"unknown variant {name!r}: one of {LADDER}, optionally @condition")
    if cond and cond not in ADVERSE:
        raise ValueError(f"unknown condition in {name!r}: one of {ADVERSE}")
    k = LADDER.index(base)
    return Terms(adv=k >= 1, cycle=k >= 2, perceptual=k >= 3, domain=k >= 4, condition=cond or None)


class Variant:
    """One generator with the discriminators its terms need, and its optimisers."""

    def __init__(self, name: str, cfg: ForkConfig, lr: float, device: torch.device, crops: int = 0) -> None:
        if name.endswith("#paper"):
            cfg = ForkConfig.paper()
        self.name, self.terms, self.cfg = name, terms_of(name), cfg
        self.crops = crops  # train on the first ``crops`` crops of each batch only (0: all)
        t = self.terms
        self.gen = ForkGenerator(cfg).to(device)
        parts = [self.gen.enc_x, self.gen.trans_y]
        if t.cycle:
            parts += [self.gen.enc_y, self.gen.trans_x, self.gen.recon_x, self.gen.recon_y]
        self.g_params = [p for m in parts for p in m.parameters()]
        self.d_y = MultiScaleDiscriminator().to(device) if t.adv else None
        self.d_x = MultiScaleDiscriminator().to(device) if t.cycle else None
        self.d_d = DomainClassifier(cfg.width).to(device) if t.domain else None
        d_params = [p for d in (self.d_y, self.d_x, self.d_d) if d is not None for p in d.parameters()]
        self.opt_g = torch.optim.Adam(self.g_params, lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(d_params, lr=lr, betas=(0.5, 0.999)) if d_params else None
        self.sums: dict[str, float] = {}
        self.count = 0

    def set_lr(self, lr: float) -> None:
        for opt in (self.opt_g, self.opt_d):
            if opt is not None:
                for g in opt.param_groups:
                    g["lr"] = lr

    def step(
        self, x: torch.Tensor, y: torch.Tensor, cond: torch.Tensor, feats: DetectorFeatures | None
    ) -> None:
        t, g, w = self.terms, self.gen, WEIGHTS
        if self.crops:
            x, y, cond = x[: self.crops], y[: self.crops], cond[: self.crops]
        if t.condition is not None:
            keep = cond == CONDITIONS.index(t.condition)
            if int(keep.sum()) < 2:
                return
            x, y = x[keep], y[keep]
        y_u = torch.roll(y, shifts=1, dims=0)  # unpaired clean frames for the GAN terms
        z_x = g.enc_x(x)
        fake_y = g.trans_y(z_x, x)
        losses = {"pair": F.l1_loss(fake_y, y)}
        if t.adv:
            losses["adv"] = lsgan_g(self.d_y(fake_y))
        if t.cycle:
            z_y = g.enc_y(y_u)
            fake_x = g.trans_x(z_y, y_u)
            losses["adv"] = losses["adv"] + lsgan_g(self.d_x(fake_x))
            losses["rec"] = F.l1_loss(g.recon_x(z_x), x) + F.l1_loss(g.recon_y(z_y), y_u)
            zt_x = g.enc_y(fake_y)
            zt_y = g.enc_x(fake_x)
            losses["cyc"] = F.l1_loss(g.trans_x(zt_x, fake_y), x) + F.l1_loss(g.trans_y(zt_y, fake_x), y_u)
        if t.perceptual and feats is not None:
            losses["per"] = perceptual(feats, fake_y, y)
        if t.domain:
            losses["lat"] = F.l1_loss(zt_x, z_x.detach()) + F.l1_loss(zt_y, z_y.detach())
            adv_t = [self.d_d(z)[0] for z in (zt_x, zt_y)]
            _, cls_x = self.d_d(z_x)
            _, cls_y = self.d_d(z_y)
            n = len(x)
            ones, zeros = (
                torch.ones(n, dtype=torch.long, device=x.device),
                torch.zeros(n, dtype=torch.long, device=x.device),
            )
            # the encoders fool the domain classifier: translated latents called real, domains swapped
            losses["cls"] = lsgan_g(adv_t) + F.cross_entropy(cls_x, ones) + F.cross_entropy(cls_y, zeros)
        total = sum(w[k] * v for k, v in losses.items())
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.g_params, 10.0)
        self.opt_g.step()
        if self.opt_d is not None:
            d_loss = lsgan_d(self.d_y(y_u), self.d_y(fake_y.detach()))
            if t.cycle:
                d_loss = d_loss + lsgan_d(self.d_x(x), self.d_x(fake_x.detach()))
            if t.domain:
                zr = [z.detach() for z in (z_x, z_y)]
                zf = [z.detach() for z in (zt_x, zt_y)]
                d_loss = d_loss + lsgan_d([self.d_d(z)[0] for z in zr], [self.d_d(z)[0] for z in zf])
                _, cx = self.d_d(zr[0])
                _, cy = self.d_d(zr[1])
                n = len(x)
                d_loss = d_loss + F.cross_entropy(cx, torch.zeros(n, dtype=torch.long, device=x.device))
                d_loss = d_loss + F.cross_entropy(cy, torch.ones(n, dtype=torch.long, device=x.device))
            losses["d"] = d_loss
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())
        self.count += 1

    def means(self) -> dict[str, float]:
        out = {k: round(v / max(self.count, 1), 5) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return out


def _to_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(a).to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return t / 127.5 - 1.0


def _lr(step: int, steps: int, base: float, warmup: int = 50) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    frac = (step - warmup) / max(steps - warmup, 1)
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))


def seeds_for(seed: int, scenes: int) -> tuple[int, ...]:
    """Training scene seeds 2_000_000 + 1000 * seed + i (apart from the detector's and the held-out sets)."""
    return tuple(2_000_000 + 1000 * seed + i for i in range(scenes))


def _half(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: t.detach().cpu().half() for k, t in module.state_dict().items()}


def _save(
    out: Path, variants: list[Variant], cond_net: ConditionNet, curve: CurveNet, info: dict[str, Any]
) -> None:
    """``out/weights.pt``: the real-time variants' whole generators (for fine-tuning), the classifier and
    the curve net. A paper-width variant keeps only what is exported (E_x, G^t_y), in fp16, one file each
    (``<name>_enc.pt``, ``<name>_dec.pt``): a lent machine hands back files of at most 16 MiB."""
    state: dict[str, Any] = {"config": asdict(variants[0].cfg), "info": info, "variants": {}}
    for v in variants:
        if v.cfg.kind == "paper":
            slug = v.name.replace("@", "_").replace("#", "_")
            torch.save(_half(v.gen.enc_x), out / f"{slug}_enc.pt")
            torch.save(_half(v.gen.trans_y), out / f"{slug}_dec.pt")
            state["variants"][v.name] = {
                "config": asdict(v.cfg),
                "files": [f"{slug}_enc.pt", f"{slug}_dec.pt"],
            }
            continue
        state["variants"][v.name] = {
            "generator": {k: t.detach().cpu() for k, t in v.gen.state_dict().items()},
            "config": asdict(v.cfg),
        }
    state["classifier"] = {k: t.detach().cpu() for k, t in cond_net.state_dict().items()}
    state["curve"] = {k: t.detach().cpu() for k, t in curve.state_dict().items()}
    tmp = out / "weights.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(out / "weights.pt")


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_render = time.perf_counter()
    spec = CleanSpec(seeds_for(args.seed, args.scenes), args.frames_per_scene, args.step)
    cache = Path(args.clean) if args.clean else render_clean(spec, args.cache, workers=args.workers)
    frames = load_clean(cache)
    with np.load(cache) as z:
        scenes = len(z["seeds"])
    render_s = time.perf_counter() - t_render
    crop_hw = tuple(int(v) for v in args.crop.split("x"))[::-1]  # "WxH" -> (H, W)
    pairs = PairConfig(crop_hw=crop_hw, crops=args.crops, seed=args.seed)
    max_steps = args.steps or 1_000_000
    ds = PairDataset(frames, pairs, length=max_steps * args.batch)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=args.batch,
        shuffle=False,
        num_workers=args.loader_workers,
        collate_fn=collate,
        persistent_workers=args.loader_workers > 0,
        prefetch_factor=4 if args.loader_workers > 0 else None,
        pin_memory=device.type == "cuda",
    )
    cfg = ForkConfig(width=args.width, enc_blocks=args.blocks, dec_blocks=args.blocks)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.ship not in names:
        raise SystemExit(f"--ship {args.ship!r} is not among --variants {names}")
    variants = [
        Variant(n, cfg, args.lr, device, args.paper_crops if n.endswith("#paper") else 0) for n in names
    ]
    if args.init:
        state = torch.load(args.init, map_location="cpu", weights_only=True)
        for v in variants:
            src = args.init_from or v.name
            if "generator" in state["variants"].get(src, {}) and v.cfg.kind == "realtime":
                own = v.gen.state_dict()
                given = state["variants"][src]["generator"]
                fits = {k: t for k, t in given.items() if k in own and own[k].shape == t.shape}
                v.gen.load_state_dict(fits, strict=False)
                skipped = sorted(set(own) - set(fits))
                log.info(
                    "%s starts from %s:%s (%d tensors; new: %s)",
                    v.name,
                    args.init,
                    src,
                    len(fits),
                    skipped or "none",
                )
    feats = None
    if any(v.terms.perceptual for v in variants):
        feats = DetectorFeatures(args.detector_weights).to(device)
    cond_net = ConditionNet(len(CONDITIONS)).to(device)
    curve = CurveNet().to(device)
    opt_c = torch.optim.Adam(cond_net.parameters(), lr=1e-3)
    opt_z = torch.optim.Adam(curve.parameters(), lr=1e-3)
    log.info(
        "training %s on %d clean frames (%s), crops %s x %d per item, batch %d items, device %s",
        names,
        len(frames),
        cache,
        args.crop,
        args.crops,
        args.batch,
        device,
    )
    steps = args.steps
    history: list[dict[str, Any]] = []
    aux_sums = {"classifier_ce": 0.0, "classifier_acc": 0.0, "curve": 0.0}
    t0 = time.perf_counter()
    last_ckpt = t0
    calibrate = steps == 0
    if calibrate and not args.time_budget_s:
        raise SystemExit("give --steps or --time-budget-s")
    provisional = 10_000  # for the warm-up learning rate until the step count is fixed
    info: dict[str, Any] = {}
    step = 0
    for batch in loader:
        x = _to_tensor(batch["degraded"], device)
        y = _to_tensor(batch["clean"], device)
        cond = torch.from_numpy(batch["condition"]).to(device)
        lr = _lr(step, steps or provisional, args.lr)
        for v in variants:
            v.set_lr(lr)
            v.step(x, y, cond, feats)
        thumb = _to_tensor(batch["thumb"], device)
        tcond = torch.from_numpy(batch["thumb_condition"]).to(device)
        logits = cond_net(thumb)
        ce = F.cross_entropy(logits, tcond)
        opt_c.zero_grad(set_to_none=True)
        ce.backward()
        opt_c.step()
        xu, yu = (x + 1.0) * 0.5, (y + 1.0) * 0.5
        a = curve.curves(xu)
        z = xu
        for _ in range(curve.iterations):
            z = z + a * (z - z * z)
        zl = F.l1_loss(z.clamp(0, 1), yu) + smoothness(a)
        opt_z.zero_grad(set_to_none=True)
        zl.backward()
        opt_z.step()
        aux_sums["classifier_ce"] += float(ce.detach())
        aux_sums["classifier_acc"] += float((logits.argmax(1) == tcond).float().mean())
        aux_sums["curve"] += float(zl.detach())
        step += 1
        if calibrate and step == 10:
            rate = (time.perf_counter() - t0) / 10
            steps = max(int((args.time_budget_s - (time.perf_counter() - t0)) / rate) + 10, 20)
            log.info("%.3f s/step: %d steps fit the %.0f s budget", rate, steps, args.time_budget_s)
            calibrate = False
        if step % args.log_every == 0 or step == steps:
            row = {"step": step, "s": round(time.perf_counter() - t0, 1), "lr": lr}
            since = step - (history[-1]["step"] if history else 0)
            row.update({k: round(v / since, 4) for k, v in aux_sums.items()})
            aux_sums = dict.fromkeys(aux_sums, 0.0)
            row["variants"] = {v.name: v.means() for v in variants}
            history.append(row)
            log.info("step %d/%s %.0fs %s", step, steps, row["s"], json.dumps(row["variants"]))
        if time.perf_counter() - last_ckpt > args.checkpoint_s:
            info = {"steps_done": step, "steps": steps, "train_s": time.perf_counter() - t0}
            _save(out, variants, cond_net, curve, info)
            last_ckpt = time.perf_counter()
        if steps and step >= steps:
            break
    train_s = time.perf_counter() - t0
    info = {
        "steps": step,
        "train_s": round(train_s, 1),
        "render_s": round(render_s, 1),
        "frames": len(frames),
        "clean_cache": Path(cache).name,
        "scenes": scenes,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "threads": args.threads,
        "batch_items": args.batch,
        "crops": args.crops,
        "crop": args.crop,
        "lr": args.lr,
        "seed": args.seed,
        "variants": names,
        "ship": args.ship,
        "weights": WEIGHTS,
        "history": history,
    }
    _save(out, variants, cond_net, curve, info)
    (out / "training.json").write_text(json.dumps(info, indent=1) + "\n")
    log.info("trained %d steps in %.0f s -> %s", step, train_s, out / "weights.pt")
    return info


# --------------------------------------------------------------------------------------------------
# export


def _restorer_card(name: str, shape_hw: tuple[int, int], unit: bool, provenance: dict[str, Any]) -> dict:
    h, w = shape_hw
    norm = (
        {"scale": "1/255", "mean": [0.0], "std": [1.0]}
        if unit
        else {"scale": "1/255", "mean": [0.5], "std": [0.5]}
    )
    return {
        "name": name,
        "task": "weather",
        "model": "model.onnx" if name == "sim_weather" else f"{name}.onnx",
        "inputs": [
            {"name": "image", "shape": [1, 3, h, w], "color": "RGB", **norm, "resize": {"policy": "stretch"}}
        ],
        "outputs": [{"name": "restored", "shape": [1, 3, h, w]}],
        "decoder": {"type": "image"},
        "precision": {"preferred": "fp16", "supported": ["fp32", "fp16"]},
        "provenance": provenance,
    }


def _write_card(path: Path, card: dict[str, Any], header: str) -> None:
    import yaml

    text = "".join(f"# {line}\n" for line in header.splitlines())
    path.write_text(text + yaml.safe_dump(card, sort_keys=False, width=110))


def _export_one(
    module: torch.nn.Module, example: torch.Tensor, path: Path, inp: str, outp: str, value_range: str
) -> dict[str, Any]:
    from perception_pkg.training.export import export_onnx, parity_check

    module = module.cpu().eval()
    export_onnx(module, example, path, [inp], [outp], dynamo=False)
    rng = np.random.default_rng(0)
    lo = -1.0 if value_range == "tanh" else 0.0
    x = rng.uniform(lo, 1.0, tuple(example.shape)).astype(np.float32)
    report = parity_check(module, path, {inp: x})
    if not report.passed:
        raise RuntimeError(f"{path}: {report}")
    return {"max_abs_diff": max(o.max_abs_diff for o in report.outputs), "relative": report.worst}


def _scale_of(cfg: ForkConfig, trunk_scale: int) -> int:
    """The trunk scale a variant is exported with: only the real-time curve-map restorer scales."""
    return trunk_scale if cfg.kind == "realtime" and cfg.image_skip else 1


def export(
    weights: str | Path,
    out: str | Path,
    ship: str | None = None,
    command: str = "",
    trunk_scale: int = DEPLOY_TRUNK_SCALE,
) -> dict[str, Any]:
    """ONNX + cards from ``weights.pt`` (see the module docstring for what goes where). Real-time
    restorers are exported as :class:`DeployedRestorer` with the trunk at 1/``trunk_scale``."""
    state = torch.load(weights, map_location="cpu", weights_only=True)
    cfg = ForkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()})
    info = state["info"]
    ship = ship or info.get("ship", "full")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cost = restorer_cost(cfg, EXPORT_HW, _scale_of(cfg, trunk_scale))
    paper = restorer_cost(ForkConfig.paper(), (256, 512))
    training = (
        f"{command or 'perception train weather'}: {info.get('steps')} steps, {info.get('train_s')} s on "
        f"{info.get('device_name')} (batch {info.get('batch_items')} x {info.get('crops')} crops of "
        f"{info.get('crop')}), {info.get('frames')} clean frames of {info.get('scenes')} scenes; variants "
        f"trained in lockstep: {', '.join(info.get('variants', []))}"
    )
    written: dict[str, Any] = {"parity": {}}
    example = torch.zeros(1, 3, *EXPORT_HW)
    for name, entry in state["variants"].items():
        vcfg = ForkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["config"].items()})
        gen = ForkGenerator(vcfg)
        if "files" in entry:  # a paper-width variant: its exported parts only, fp16
            folder = Path(weights).parent
            gen.enc_x.load_state_dict(
                {k: t.float() for k, t in torch.load(folder / entry["files"][0], weights_only=True).items()}
            )
            gen.trans_y.load_state_dict(
                {k: t.float() for k, t in torch.load(folder / entry["files"][1], weights_only=True).items()}
            )
        else:
            gen.load_state_dict(entry["generator"])
        scale = _scale_of(vcfg, trunk_scale)
        vcost = cost if vcfg == cfg else restorer_cost(vcfg, EXPORT_HW, scale)
        kind = (
            "real-time variant (MobileNeXt sandglass)" if vcfg.kind == "realtime" else "at the paper's widths"
        )
        slug = name.replace("@", "_").replace("#", "_")
        target = out if name == ship else out / "variants" / slug
        target.mkdir(parents=True, exist_ok=True)
        module = DeployedRestorer(gen.enc_x, gen.trans_y, scale) if scale > 1 else gen.restorer()
        written["parity"][name] = _export_one(
            module, example, target / "model.onnx", "image", "restored", "tanh"
        )
        prov = {
            "training": training,
            "data": "simulator pairs (perception_pkg.sim.weather: fog, rain, snow, night at severities 1-5, "
            "and clear frames), 640x480, training scene seeds 2,000,000+",
            "notes": f"variant {name} ({describe_variant(name)}); ForkGAN {kind}: "
            f"{vcost['gmac']:.2f} GMAC at 640x480 (trunk at 1/{scale}), "
            f"{vcost['params_restorer']:,} parameters exported (E_x + G^t_y; whole generator "
            f"{vcost['params_generator']:,}); the paper's widths: {paper['gmac']:.1f} GMAC at 256x512, "
            f"{paper['params_restorer']:,} parameters",
            "license": "Apache-2.0 (ours)",
        }
        card = _restorer_card(
            "sim_weather" if name == ship else f"sim_weather_{slug}", EXPORT_HW, False, prov
        )
        card["model"] = "model.onnx"
        _write_card(
            target / "card.yaml",
            card,
            f"Weather restorer (ForkGAN real-time variant), variant {name}.\n"
            "Input x/127.5 - 1 (RGB), output tanh range; the image decoder inverts it.",
        )
    cond = ConditionNet(len(CONDITIONS))
    cond.load_state_dict(state["classifier"])
    written["parity"]["classifier"] = _export_one(
        cond, torch.zeros(1, 3, *CLASSIFIER_HW), out / "classifier.onnx", "image", "logits", "tanh"
    )
    ccard = {
        "name": "sim_weather_classifier",
        "task": "weather",
        "model": "classifier.onnx",
        "inputs": [
            {
                "name": "image",
                "shape": [1, 3, *CLASSIFIER_HW],
                "color": "RGB",
                "scale": "1/255",
                "mean": [0.5],
                "std": [0.5],
                "resize": {"policy": "stretch"},
            }
        ],
        "outputs": [{"name": "logits", "shape": [1, len(CONDITIONS)]}],
        "decoder": {"type": "raw"},
        "classes": list(CONDITIONS),
        "provenance": {
            "training": training,
            "notes": f"{count_macs(cond, torch.zeros(1, 3, *CLASSIFIER_HW)) / 1e6:.1f} "
            f"MMAC, {count_params(cond):,} parameters; logits over classes (softmax in the core)",
            "license": "Apache-2.0 (ours)",
        },
    }
    _write_card(out / "classifier_card.yaml", ccard, "Weather condition classifier: whole frame at 160x120.")
    curve = CurveNet()
    curve.load_state_dict(state["curve"])
    written["parity"]["zerodce"] = _export_one(
        curve, example, out / "zerodce.onnx", "image", "restored", "unit"
    )
    zprov = {
        "training": training + "; paired L1 + illumination smoothness",
        "notes": f"Zero-DCE++-style curve net baseline: {count_params(curve):,} parameters, "
        f"{count_macs(curve, example) / 1e9:.3f} GMAC at 640x480",
        "license": "Apache-2.0 (ours)",
    }
    zcard = _restorer_card("sim_weather_zerodce", EXPORT_HW, True, zprov)
    zcard["model"] = "zerodce.onnx"
    _write_card(
        out / "zerodce_card.yaml",
        zcard,
        "Zero-DCE++-style curve-estimation baseline (input and output in [0, 1]).",
    )
    written["cost"] = {
        "realtime": cost,
        "paper_256x512": paper,
        "paper_640x480": restorer_cost(ForkConfig.paper(), EXPORT_HW),
    }
    (out / "export.json").write_text(json.dumps(written, indent=1) + "\n")
    return written


def describe_variant(name: str) -> str:
    t = terms_of(name)
    parts = ["paired L1"]
    if t.adv:
        parts.append("LSGAN")
    if t.cycle:
        parts.append("cycle + reconstruction")
    if t.perceptual:
        parts.append("detector-feature perceptual")
    if t.domain:
        parts.append("latent domain classifier + latent consistency")
    if t.condition:
        parts.append(f"trained on {t.condition} only")
    return " + ".join(parts)


# --------------------------------------------------------------------------------------------------
# CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/weather", help="output folder (weights.pt, training.json, ONNX)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--scenes", type=int, default=40, help="training scenes (seeds 2,000,000 + 1000 * seed + i)"
    )
    p.add_argument("--frames-per-scene", type=int, default=4)
    p.add_argument("--step", type=int, default=8, help="time steps between a scene's frames")
    p.add_argument("--cache", default="data/cache", help="where the rendered clean frames are kept")
    p.add_argument("--clean", default=None, help="use this clean-frame cache file instead of rendering")
    p.add_argument("--workers", type=int, default=2, help="render processes")
    p.add_argument("--loader-workers", type=int, default=1, help="degradation worker processes")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--steps", type=int, default=0, help="training steps (0: fit --time-budget-s)")
    p.add_argument("--time-budget-s", type=float, default=0.0, help="size the run to this many seconds")
    p.add_argument("--batch", type=int, default=4, help="items per step (each gives --crops crops)")
    p.add_argument("--crops", type=int, default=2, help="crops cut from one degraded frame")
    p.add_argument("--crop", default="160x120", help="crop WxH at full resolution")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--width", type=int, default=96, help="latent channels of the real-time generator")
    p.add_argument(
        "--blocks", type=int, default=4, help="sandglass blocks in the encoder and in each decoder"
    )
    p.add_argument(
        "--variants", default="full", help="comma list: paired, adv, cycle, perceptual, full, full@fog, ..."
    )
    p.add_argument("--ship", default="full", help="the variant exported as model.onnx / card.yaml")
    p.add_argument(
        "--paper-crops",
        type=int,
        default=16,
        help="a NAME#paper variant (the paper's widths) trains on the first N crops of a batch",
    )
    p.add_argument(
        "--detector-weights",
        default="models/sim_detector/model.pt",
        help="state dict of the shipped detector (perceptual features)",
    )
    p.add_argument(
        "--init", default=None, help="continue from this weights.pt (each variant from its namesake)"
    )
    p.add_argument("--init-from", default=None, help="with --init: start every variant from this one")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--checkpoint-s", type=float, default=120.0)
    p.add_argument(
        "--export", action="store_true", help="export ONNX + cards into --export-dir after training"
    )
    p.add_argument("--export-only", action="store_true", help="only export --weights into --export-dir")
    p.add_argument("--weights", default=None, help="weights.pt to export (with --export-only)")
    p.add_argument("--export-dir", default=None, help="where ONNX + cards go (default: --out)")
    p.add_argument(
        "--trunk-scale",
        type=int,
        default=DEPLOY_TRUNK_SCALE,
        help="export the real-time restorer with its trunk on a 1/N thumbnail (default %(default)s; 1: full)",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import sys

    argv = sys.argv[sys.argv.index("weather") + 1 :] if "weather" in sys.argv else sys.argv[1:]
    command = "perception train weather " + " ".join(argv)
    if args.export_only:
        if not args.weights:
            print("--export-only needs --weights", file=sys.stderr)
            return 2
        res = export(args.weights, args.export_dir or args.out, args.ship, command, args.trunk_scale)
        print(json.dumps(res["parity"], indent=1))
        return 0
    train(args)
    if args.export:
        weights = Path(args.out) / "weights.pt"
        export(weights, args.export_dir or args.out, args.ship, command, args.trunk_scale)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())

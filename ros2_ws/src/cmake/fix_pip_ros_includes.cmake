# The ROS 2 pip wheels export their *__rosidl_generator_py targets with the include directory of
# the machine they were built on (/opt/python/...). Point such targets at this interpreter's
# headers instead. On a system ROS install the directories exist and nothing is changed.
function(fix_pip_ros_includes)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)
  foreach(dep ${ARGN})
    set(target "${dep}::${dep}__rosidl_generator_py")
    if(NOT TARGET ${target})
      continue()
    endif()
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    set(broken FALSE)
    foreach(d ${dirs})
      if(NOT EXISTS "${d}")
        set(broken TRUE)
      endif()
    endforeach()
    if(broken)
      message(STATUS "fix_pip_ros_includes: ${target} include dirs reset to this Python")
      set_target_properties(${target} PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
    endif()
  endforeach()
endfunction()

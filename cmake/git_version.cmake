# Writes OUT (a C header defining VKLLM_GIT_COMMIT: the short commit hash, "-dirty" when the
# tree has changes, "unknown" outside git), rewriting it only when the value changed so that a
# build without changes recompiles nothing. Run at every build (cmake -P).
execute_process(COMMAND git -C ${SRC} describe --always --dirty --abbrev=7 --exclude=*
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE rc ERROR_QUIET)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
endif()
set(text "#define VKLLM_GIT_COMMIT \"${commit}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()

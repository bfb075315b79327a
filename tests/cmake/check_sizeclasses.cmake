# cmake -DPYTHON=... -DGENERATOR=... -DEXPECTED=... -DOUTPUT=... -P check_sizeclasses.cmake
# Runs the size-class generator and fails unless its output is byte-for-byte
# the checked-in header.
foreach(var PYTHON GENERATOR EXPECTED OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_sizeclasses.cmake: -D${var}=... is required")
  endif()
endforeach()

execute_process(COMMAND ${PYTHON} ${GENERATOR}
                OUTPUT_FILE ${OUTPUT}
                ERROR_VARIABLE gen_err
                RESULT_VARIABLE gen_rc)
if(NOT gen_rc EQUAL 0)
  message(FATAL_ERROR "generator failed (${gen_rc}): ${PYTHON} ${GENERATOR}\n${gen_err}")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUTPUT} ${EXPECTED}
                RESULT_VARIABLE cmp_rc)
if(NOT cmp_rc EQUAL 0)
  find_program(DIFF diff)
  set(details "")
  if(DIFF)
    execute_process(COMMAND ${DIFF} -u ${EXPECTED} ${OUTPUT} OUTPUT_VARIABLE details)
  endif()
  message(FATAL_ERROR "${EXPECTED} differs from the generator's output "
                      "(regenerate: python3 scripts/gen_sizeclasses.py -o alloc/sizeclasses.h)\n"
                      "${details}")
endif()
message(STATUS "sizeclasses.h matches the generator")

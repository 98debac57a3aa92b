# Included by tests/CMakeLists.txt: build fuzz/ with clang in a sub-build of
# this tree (build/fuzz-build) and register, per target,
#   fuzz/<target>/replay  every seed and regression input once (fast; a
#                         fixed bug that comes back fails here)
#   fuzz/<target>/run     libFuzzer for PGSTREAM_FUZZ_SECONDS from the seeds
# The sub-build is a separate CMake project run with -DPGSTREAM_FUZZ=ON
# because libFuzzer needs clang while the main tree uses the default compiler.
include(ExternalProject)

find_program(PGS_CLANG NAMES clang clang-14)
if(NOT PGS_CLANG)
  message(FATAL_ERROR "clang not found (fuzz targets): run scripts/deps.sh, or -DPGSTREAM_FUZZ_TESTS=OFF")
endif()
set(PGSTREAM_FUZZ_SECONDS 30 CACHE STRING "Seconds each fuzz target runs in the test suite")

set(PGS_FUZZ_BUILD ${CMAKE_BINARY_DIR}/fuzz-build)
ExternalProject_Add(pgstream_fuzz
  SOURCE_DIR ${PROJECT_SOURCE_DIR}
  BINARY_DIR ${PGS_FUZZ_BUILD}
  CMAKE_ARGS -DCMAKE_C_COMPILER=${PGS_CLANG} -DCMAKE_BUILD_TYPE=RelWithDebInfo
             -DPGSTREAM_FUZZ=ON -DPGSTREAM_TESTS=OFF -DPGSTREAM_WERROR=${PGSTREAM_WERROR}
  BUILD_ALWAYS ON
  INSTALL_COMMAND "")

foreach(target decoder json_value config copytext)
  set(bin ${PGS_FUZZ_BUILD}/fuzz/fuzz_${target})
  add_test(NAME fuzz/${target}/replay
           COMMAND ${PROJECT_SOURCE_DIR}/fuzz/run.sh replay ${bin} ${target})
  add_test(NAME fuzz/${target}/run
           COMMAND ${PROJECT_SOURCE_DIR}/fuzz/run.sh run ${bin} ${target}
                   ${PGSTREAM_FUZZ_SECONDS} ${CMAKE_BINARY_DIR}/fuzz-work/${target})
  math(EXPR timeout "${PGSTREAM_FUZZ_SECONDS} + 120")
  set_tests_properties(fuzz/${target}/run PROPERTIES TIMEOUT ${timeout} PROCESSORS 2)
endforeach()

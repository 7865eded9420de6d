# Run `mproc bench --quick` as a user would and check that every system
# ran and gave figures: the table names it and the CSV, which holds only rows
# with figures, has its rows. Timings are never asserted: the machine is
# shared and noisy. With gnuplot, a second, shorter run draws charts; and
# `--plot` must refuse before anything runs when it cannot draw them.
#
#   cmake -DTOOL=path/to/mproc -DWORK=scratch/dir -P bench_check.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

function(run_bench)
  execute_process(COMMAND ${TOOL} bench ${ARGN} RESULT_VARIABLE rc
    OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "mproc bench ${ARGN} exited with ${rc}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

run_bench(--quick --reps 1 --csv ${WORK}/bench.csv)
file(READ ${WORK}/bench.csv csv)

# OpenMP and Python are optional: the header says whether this build has
# OpenMP, and python3 is looked for here as the bench looks for it.
set(systems "serial C" "mproc threads" "mproc processes, data copied"
  "mproc processes, shared arena" "mproc threads, batch"
  "mproc processes, arena, batch" "fork + exit + wait"
  "mproc processes, workers=8" "mproc run")
if(out MATCHES "OpenMP: not in this build")
  message(STATUS "OpenMP not in this build: its rows are not checked")
else()
  list(APPEND systems "OpenMP guided" "OpenMP dynamic")
endif()
find_program(PYTHON3 python3)
if(PYTHON3)
  list(APPEND systems "Python Pool" "Python ThreadPool" "Python Pool (fork)")
else()
  message(STATUS "python3 not found: the Python rows are not checked")
endif()
foreach(sys ${systems})
  string(FIND "${out}" "\n${sys} " at)
  if(at EQUAL -1)
    message(FATAL_ERROR "mproc bench printed no row of '${sys}':\n${out}")
  endif()
  string(FIND "${csv}" "\"${sys}\"" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "bench.csv has no figures of '${sys}':\n${csv}")
  endif()
endforeach()

# Every workload has a table and rows in the CSV; the shared arena is in
# each workload with per-item data.
foreach(wl sleep cpu trivial latency cancel kill open large_open uneven large
    run)
  string(REGEX MATCH "\n${wl}," row "${csv}")
  if(NOT row)
    message(FATAL_ERROR "bench.csv has no rows of workload '${wl}':\n${csv}")
  endif()
endforeach()
foreach(wl trivial latency cancel uneven large)
  string(FIND "${csv}" "${wl},\"mproc processes, shared arena\"" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "bench.csv: no shared-arena figures in '${wl}':\n${csv}")
  endif()
endforeach()
foreach(want "== targets ==" "targets met" "Other work on the machine")
  string(FIND "${out}" "${want}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "mproc bench did not print '${want}':\n${out}")
  endif()
endforeach()

# --plot is checked before any workload runs: without gnuplot in PATH, or
# with a directory that cannot be made, it exits 2 at once.
execute_process(COMMAND ${CMAKE_COMMAND} -E env PATH=${WORK}/no-such-dir
  ${TOOL} bench --plot ${WORK}/charts-none --only latency
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "gnuplot" OR out MATCHES "==")
  message(FATAL_ERROR "--plot without gnuplot: exit ${rc}, want 2 before "
    "any workload\n${out}\n${err}")
endif()
file(WRITE ${WORK}/a-file "")
execute_process(COMMAND ${TOOL} bench --plot ${WORK}/a-file/charts --only latency
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR out MATCHES "==")
  message(FATAL_ERROR "--plot into a file's path: exit ${rc}, want 2 before "
    "any workload\n${out}\n${err}")
endif()

find_program(GNUPLOT gnuplot)
if(NOT GNUPLOT)
  message(STATUS "gnuplot not found: the charts are not checked")
  return()
endif()
# The directory and its parent do not exist yet: --plot makes them.
run_bench(--quick --reps 1 --no-python --only latency,open
  --plot ${WORK}/plots/charts)
foreach(png latency.png open_close.png)
  if(NOT EXISTS ${WORK}/plots/charts/${png})
    message(FATAL_ERROR "mproc bench --plot drew no ${png}:\n${out}")
  endif()
  file(SIZE ${WORK}/plots/charts/${png} size)
  if(size LESS 1000)
    message(FATAL_ERROR "${png} is ${size} bytes: not a chart")
  endif()
endforeach()

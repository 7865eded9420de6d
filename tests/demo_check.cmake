# Run `mproc demo --quick` as a user would and check that every cell printed
# its results and its lesson.
#
#   cmake -DTOOL=path/to/mproc [-DKIND=processes|threads|mpi]
#         [-DSTART=spawn] [-DLAUNCH="mpirun;-np;3"] -P demo_check.cmake
#
# START, when given, is passed as --start: the process pools' workers are
# then fresh runs of the program, and cell 23's lesson says so.
# KIND, when given, is passed as --kind; the Pool cells then run on it. With
# mpi, LAUNCH starts the demo on 3 ranks: its Pool cells have 2 workers.
set(args demo --quick)
if(KIND)
  list(APPEND args --kind ${KIND})
else()
  set(KIND processes)
endif()
if(START)
  list(APPEND args --start ${START})
endif()
set(name ${KIND})
set(w5 5)
set(w6 10)
set(w26 4)
if(KIND STREQUAL "mpi")
  set(name "MPI ranks")
  set(w5 2)
  set(w6 2)
  set(w26 2)
endif()
string(REPLACE ";" " " shown "${LAUNCH} mproc ${args}")
execute_process(COMMAND ${LAUNCH} ${TOOL} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${shown} exited with ${rc}\n${out}\n${err}")
endif()

# Each cell's lines are looked for in that cell only: from its header to the
# next cell's, so that a line another cell prints cannot stand in for it
# (cells 17 and 25 both end on "Final result: 40").
function(check_cell header)
  string(FIND "${out}" "\n== ${header}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${shown} printed no cell '${header}':\n${out}")
  endif()
  math(EXPR at "${at} + 1")
  string(SUBSTRING "${out}" ${at} -1 cell)
  string(FIND "${cell}" "\n== In [" end)
  if(NOT end EQUAL -1)
    string(SUBSTRING "${cell}" 0 ${end} cell)
  endif()
  foreach(want ${ARGN})
    string(FIND "${cell}" "${want}" found)
    if(found EQUAL -1)
      message(FATAL_ERROR "${shown}: cell '${header}' did not print '${want}':\n${cell}")
    endif()
  endforeach()
endfunction()

check_cell("In [3]: one slow add" "result: 6\n")
check_cell("In [4]: the 10 pairs" "result: 2\n" "result: 20\n")
check_cell("In [5]: the same on a pool of ${w5} ${name}" "result: 2\n" "result: 20\n")
check_cell("In [6]: a CPU-bound add" "then ${w6} ${name} ==" "result: 11\n"
  "result: 20\n" "seconds (1 worker)" "seconds (${w6} workers)")
check_cell("In [7]: the speedup" " CPU")
check_cell("In [9]: one CPU-bound task on 1 thread" "seconds (1 single C thread)")
check_cell("In [12]: ten CPU-bound tasks on 10 threads" "seconds (10 C threads)")
check_cell("In [11]: ten tasks against one" " = ")
check_cell("In [17]: a global total" "sub total so far: 40\n" "Final result: 40\n"
  "atomic add:")
check_cell("In [22]: the same global total on a pool of 2 processes"
  ": sub total so far: 5\n")
check_cell("In [23]: total, in the caller, afterwards" "afterwards ==\n0\n")
if(KIND STREQUAL "mpi")
  check_cell("In [24 (new)]" "(not run: ranks share no memory)")
else()
  check_cell("In [24 (new)]" "on a pool of 2 ${name} ==" ": shared total so far: "
    "\nFinal result, in the caller: 40\n")
endif()
check_cell("In [25 (new)]" "\nFinal result: 40\n")
check_cell("In [26 (new)]" "200 items of" " on ${w26} ${name}\n" "200/200")
check_cell("In [27 (new)]" "file1.txt: 1156 bytes: " "file3.txt: 5 bytes: short\n")

if(START STREQUAL "spawn")
  check_cell("In [23]" "each spawned worker is a fresh run of the program")
  string(FIND "${out}" "(processes, spawned, quick)" found)
  if(found EQUAL -1)
    message(FATAL_ERROR "${shown}: the header does not say the workers are spawned:\n${out}")
  endif()
endif()

string(REGEX MATCHALL "\n-> [^\n]+" lessons "${out}")
list(LENGTH lessons n)
if(n LESS 10)
  message(FATAL_ERROR "mproc demo printed ${n} lessons, want one per cell group:\n${out}")
endif()

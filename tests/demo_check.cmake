# Run `mproc demo --quick` as a user would and check that every cell printed
# its results and its lesson.
execute_process(COMMAND ${TOOL} demo --quick RESULT_VARIABLE rc OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mproc demo exited with ${rc}\n${out}\n${err}")
endif()
foreach(want
    "In [3]: one slow add" "result: 6"
    "In [4]: the 10 pairs" "result: 20"
    "In [5]: the same on a pool of 5 processes"
    "In [6]: a CPU-bound add" "result: 11" "seconds (1 worker)" "seconds (10 workers)"
    "In [7]: the speedup" " CPU"
    "In [9]: one CPU-bound task on 1 thread" "In [12]: ten CPU-bound tasks on 10 threads"
    "In [11]: ten tasks against one"
    "In [17]: a global total" "sub total so far: 40" "Final result: 40" "atomic add:"
    "In [22]: the same global total on a pool of 2 processes" ": sub total so far: 5"
    "In [23]: total, in the caller, afterwards ==\n0\n"
    "In [24 (new)]" ": shared total so far: " "Final result, in the caller: 40"
    "In [25 (new)]" "Final result: 40\n" "In [26 (new)]" "200/200")
  string(FIND "${out}" "${want}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "mproc demo did not print '${want}':\n${out}")
  endif()
endforeach()
string(REGEX MATCHALL "\n-> [^\n]+" lessons "${out}")
list(LENGTH lessons n)
if(n LESS 10)
  message(FATAL_ERROR "mproc demo printed ${n} lessons, want one per cell group:\n${out}")
endif()

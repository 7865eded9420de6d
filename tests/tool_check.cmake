# The mproc tool's command line, as a user types it: one case per run.
#
#   cmake -DTOOL=path/to/mproc -DCASE=name [-DVERSION=x.y.z] -P tool_check.cmake
#
# Each case runs the tool and asserts its exit status and what it printed,
# showing both sides when they differ. Figures are never asserted.

# Run the tool with ARGN; rc, out and err in the caller's scope.
function(tool)
  execute_process(COMMAND ${TOOL} ${ARGN} RESULT_VARIABLE rc
    OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REPLACE ";" " " shown "mproc ${ARGN}")
  set(rc "${rc}" PARENT_SCOPE)
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
  set(shown "${shown}" PARENT_SCOPE)
endfunction()

function(expect_rc want)
  if(NOT rc STREQUAL "${want}")
    message(FATAL_ERROR "${shown}: exit status ${rc}, want ${want}\n"
      "stdout:\n${out}\nstderr:\n${err}")
  endif()
endfunction()

# `text` (out or err) holds each of ARGN.
function(expect_has name text)
  foreach(want ${ARGN})
    string(FIND "${text}" "${want}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${shown}: ${name} lacks '${want}':\n${text}")
    endif()
  endforeach()
endfunction()

# `text` holds none of ARGN.
function(expect_lacks name text)
  foreach(bad ${ARGN})
    string(FIND "${text}" "${bad}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${shown}: ${name} has '${bad}', want it absent:\n${text}")
    endif()
  endforeach()
endfunction()

# A verb's --help: its own usage on stdout, nothing of the other verbs'.
function(help_of verb)
  set(others demo run bench)
  list(REMOVE_ITEM others ${verb})
  foreach(arg --help -h)
    tool(${verb} ${arg})
    expect_rc(0)
    expect_has(stdout "${out}" "usage: mproc ${verb} ")
    foreach(o ${others})
      expect_lacks(stdout "${out}" "mproc ${o}")
    endforeach()
  endforeach()
endfunction()

# An unknown option: status 2, the option named, and a hint to the verb's
# --help; nothing run.
function(bad_option verb)
  tool(${verb} --bogus)
  expect_rc(2)
  expect_has(stderr "${err}" "--bogus" "try 'mproc ${verb} --help'")
  expect_lacks(stdout "${out}" "==")
endfunction()

if(CASE STREQUAL "version")
  foreach(arg --version version)
    tool(${arg})
    expect_rc(0)
    if(NOT out STREQUAL "mproc ${VERSION}\n")
      message(FATAL_ERROR "${shown} printed '${out}', want 'mproc ${VERSION}'")
    endif()
  endforeach()
elseif(CASE STREQUAL "help")
  tool(--help)
  expect_rc(0)
  expect_has(stdout "${out}" "usage: mproc COMMAND" "\n  demo " "\n  run "
    "\n  bench ")
  tool()
  expect_rc(2)
  expect_has(stderr "${err}" "no command given" "usage: mproc COMMAND")
elseif(CASE STREQUAL "unknown")
  tool(frobnicate)
  expect_rc(2)
  expect_has(stderr "${err}" "'frobnicate'" "try 'mproc --help'")
  tool(--bogus)
  expect_rc(2)
  expect_has(stderr "${err}" "--bogus" "try 'mproc --help'")
elseif(CASE STREQUAL "demo_help")
  help_of(demo)
elseif(CASE STREQUAL "demo_bad_option")
  bad_option(demo)
  tool(demo --workers=0)
  expect_rc(2)
  expect_has(stderr "${err}" "--workers" "try 'mproc demo --help'")
  tool(demo --kind)
  expect_rc(2)
  expect_has(stderr "${err}" "--kind" "try 'mproc demo --help'")
  tool(demo --start=vfork)
  expect_rc(2)
  expect_has(stderr "${err}" "--start is fork or spawn" "try 'mproc demo --help'")
  tool(demo --kind=mpi --start=spawn)
  expect_rc(2)
  expect_has(stderr "${err}" "--start spawn is for processes")
elseif(CASE STREQUAL "demo_attached")
  # --opt=value as getopt_long takes it: the Pool cells on 3 threads.
  tool(demo --quick --kind=threads --workers=3)
  expect_rc(0)
  expect_has(stdout "${out}" "== In [5]: the same on a pool of 3 threads =="
    ", then 3 threads ==")
elseif(CASE STREQUAL "bench_help")
  help_of(bench)
elseif(CASE STREQUAL "bench_bad_option")
  bad_option(bench)
  tool(bench --reps=0)
  expect_rc(2)
  expect_has(stderr "${err}" "--reps" "try 'mproc bench --help'")
elseif(CASE STREQUAL "bench_attached")
  # Two repetitions of one workload, both options attached.
  tool(bench --quick --no-python --reps=2 --only=latency)
  expect_rc(0)
  expect_has(stdout "${out}" "the median of 2 repetitions"
    "== a map of one item on a warm pool")
  expect_lacks(stdout "${out}" "== trivial items")
else()
  message(FATAL_ERROR "tool_check.cmake: no case '${CASE}'")
endif()

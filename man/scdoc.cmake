cmake_minimum_required(VERSION 3.16)
# One man page: IN (page.N.scd) through scdoc into OUT (page.N), with
# @VERSION@ replaced.
#   cmake -DSCDOC=scdoc -DIN=x.3.scd -DOUT=x.3 -DVERSION=1.2.3 -P scdoc.cmake
file(READ "${IN}" text)
string(REPLACE "@VERSION@" "${VERSION}" text "${text}")
file(WRITE "${OUT}.scd" "${text}")
execute_process(COMMAND "${SCDOC}" INPUT_FILE "${OUT}.scd"
  OUTPUT_VARIABLE roff ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "scdoc: ${IN}: ${err}")
endif()
# scdoc turns hyphenation off before .TH, which turns it on again: names
# such as mproc_pool_open would break at any syllable.
string(REGEX REPLACE "(\n\\.TH [^\n]*\n)" "\\1.nh\n" roff "${roff}")
file(WRITE "${OUT}" "${roff}")

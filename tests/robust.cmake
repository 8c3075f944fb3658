# Robust mode and signal-handler tests: per-test properties and extra runs.
#
# test_robust_scale makes ~66k robust-mode allocations three times over
# (512 KiB, 64 KiB and 1 MiB units).  Robust mode must check only what each
# operation touched; a full validation after every call is quadratic and
# takes many minutes here.  The code asserts nothing about time: this
# TIMEOUT is what fails the quadratic behaviour (a fixed build needs a few
# seconds, and stays well inside it under the sanitizers).
#
# test_signal_reentry's children each have a 30 s watchdog (a hang is a
# failure, not a stall); it also runs with the library's own rseq
# registration (no glibc rseq), where this-CPU operations in a signal
# handler take another path.

if(TARGET test_robust_scale)
  foreach(backend vm km)
    set_tests_properties(test_robust_scale.${backend} PROPERTIES TIMEOUT 240)
  endforeach()
endif()

if(TARGET test_signal_reentry)
  foreach(backend vm km)
    set_tests_properties(test_signal_reentry.${backend} PROPERTIES TIMEOUT 400)
    add_test(NAME test_signal_reentry.${backend}.norseq COMMAND test_signal_reentry)
    set_tests_properties(test_signal_reentry.${backend}.norseq PROPERTIES
      ENVIRONMENT "PERCPU_BACKEND=${backend};CMOCKA_MESSAGE_OUTPUT=stdout;GLIBC_TUNABLES=glibc.pthread.rseq=0"
      TIMEOUT 400)
  endforeach()
endif()

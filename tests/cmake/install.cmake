# `make install` end to end (tests/integration/install_test.py, cmake/install.cmake): the build
# installed into a fresh temporary prefix that is then moved; the installed binary run with a
# clean environment from an unrelated directory, with the checkout, build tree and venv hidden
# (unshare -rm + tmpfs): --version, the demo, a viewlog pipeline into Parquet read back with
# pyarrow == recompute_viewlog.py, ldd, the split debug info, the bash completion.
# Both tests expect the Arrow/Parquet of the pyarrow wheel shipped in lib/sluice: with a system
# Arrow (nothing bundled) they are not registered.
if(NOT SLUICE_ARROW_LIB_DIR)
  return()
endif()
add_test(NAME install
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/install_test.py
                 --build-dir ${CMAKE_BINARY_DIR} --version ${PROJECT_VERSION}
                 --venv ${SLUICE_VENV_DIR}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(install PROPERTIES TIMEOUT 120 LABELS "python;integration;install")
# `make package` (CPack) the same way: the .deb's Depends against the Debian packages owning the
# libraries sluice links (dpkg -S), its contents and --version; the tarball unpacked as the
# prefix and put through every check above. Compressing ~140 MB twice: about a minute.
add_test(NAME install_package
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/install_test.py
                 --build-dir ${CMAKE_BINARY_DIR} --version ${PROJECT_VERSION}
                 --venv ${SLUICE_VENV_DIR} --package
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(install_package PROPERTIES TIMEOUT 300 LABELS "python;integration;install")

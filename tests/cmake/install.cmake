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
sluice_python_test(install tests/integration/install_test.py VENV NO_SLUICE TIMEOUT 120
                   ARGS --build-dir ${CMAKE_BINARY_DIR} --version ${PROJECT_VERSION}
                        --venv ${SLUICE_VENV_DIR}
                   LABELS python integration install)
# `make package` (CPack) the same way: the .deb's Depends against the Debian packages owning the
# libraries sluice links (dpkg -S), its contents and --version; the tarball unpacked as the
# prefix and put through every check above. Compressing ~140 MB twice: about a minute.
sluice_python_test(install_package tests/integration/install_test.py VENV NO_SLUICE TIMEOUT 300
                   ARGS --build-dir ${CMAKE_BINARY_DIR} --version ${PROJECT_VERSION}
                        --venv ${SLUICE_VENV_DIR} --package
                   LABELS python integration install)

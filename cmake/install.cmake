# `make install PREFIX=...` (cmake --install) and `make package` (CPack: .tar.gz and .deb).
# Included by the top-level CMakeLists.txt after the sluice target. What goes where (relative to
# the prefix; a moved prefix keeps working, nothing points back into the checkout):
#   bin/sluice                        stripped; RUNPATH $ORIGIN/../lib/sluice
#   bin/.debug/sluice.debug           its debug info (objcopy --only-keep-debug), named by the
#                                     binary's .gnu_debuglink: gdb finds it next to the binary
#                                     under any prefix
#   lib/sluice/                       the Arrow/Parquet shared libraries of the pyarrow wheel
#                                     (only when they come from the wheel, not a system Arrow)
#   share/sluice/examples/            examples/*.toml, *.sql and examples/data/
#   share/sluice/deploy/              deploy/ (systemd unit, Prometheus, Grafana, Airflow DAGs)
#   share/bash-completion/completions/sluice   bash completion, generated from `sluice --help`
include(GNUInstallDirs)

# Bash completion: generated from the built binary's --help output (every subcommand and its
# options), so it cannot fall behind the CLI.
set(SLUICE_COMPLETION "${CMAKE_BINARY_DIR}/completion/sluice.bash")
add_custom_command(
  OUTPUT "${SLUICE_COMPLETION}"
  COMMAND ${CMAKE_COMMAND} -DSLUICE=$<TARGET_FILE:sluice> -DOUTPUT=${SLUICE_COMPLETION}
          -P ${PROJECT_SOURCE_DIR}/cmake/bash_completion.cmake
  DEPENDS sluice ${PROJECT_SOURCE_DIR}/cmake/bash_completion.cmake
  COMMENT "Generating the bash completion from sluice --help"
  VERBATIM)
add_custom_target(sluice_completion ALL DEPENDS "${SLUICE_COMPLETION}")

install(TARGETS sluice RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Split the installed binary's debug info into bin/.debug/sluice.debug and strip the binary.
# Runs after install(TARGETS) has replaced the build RUNPATH with INSTALL_RPATH.
find_program(SLUICE_OBJCOPY NAMES objcopy ${CMAKE_OBJCOPY})
if(SLUICE_OBJCOPY)
  install(CODE "
    set(bin \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/sluice\")
    get_filename_component(bindir \"\${bin}\" DIRECTORY)
    file(MAKE_DIRECTORY \"\${bindir}/.debug\")
    message(STATUS \"Splitting debug info: \${bindir}/.debug/sluice.debug\")
    set(debug \"\${bindir}/.debug/sluice.debug\")
    execute_process(COMMAND \"${SLUICE_OBJCOPY}\" --only-keep-debug \"\${bin}\" \"\${debug}\"
                    COMMAND_ERROR_IS_FATAL ANY)
    file(CHMOD \"\${debug}\" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
    execute_process(COMMAND \"${SLUICE_OBJCOPY}\" --strip-debug --strip-unneeded
                            --add-gnu-debuglink=sluice.debug \"\${bin}\"
                    WORKING_DIRECTORY \"\${bindir}/.debug\"
                    COMMAND_ERROR_IS_FATAL ANY)
  ")
else()
  message(WARNING "objcopy not found: `make install` installs sluice with its debug info")
endif()

if(SLUICE_ARROW_LIB_DIR)
  # The wheel's libraries (libarrow, libparquet; their own RUNPATH is $ORIGIN) ship beside the
  # binary, which finds them through an $ORIGIN-relative RUNPATH.
  set(SLUICE_INSTALL_LIBDIR "${CMAKE_INSTALL_LIBDIR}/sluice")
  foreach(lib IN LISTS SLUICE_ARROW_LIBS)
    get_target_property(file ${lib} IMPORTED_LOCATION)
    install(FILES "${file}" DESTINATION ${SLUICE_INSTALL_LIBDIR})
  endforeach()
  file(RELATIVE_PATH bin_to_lib "/${CMAKE_INSTALL_BINDIR}" "/${SLUICE_INSTALL_LIBDIR}")
  set_target_properties(sluice PROPERTIES INSTALL_RPATH "$ORIGIN/${bin_to_lib}")
endif()

install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/sluice)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/sluice/examples
        FILES_MATCHING PATTERN "*.toml" PATTERN "*.sql" PATTERN "data/*")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/deploy/ DESTINATION ${CMAKE_INSTALL_DATADIR}/sluice/deploy
        PATTERN "__pycache__" EXCLUDE PATTERN "*.pyc" EXCLUDE)
install(FILES "${SLUICE_COMPLETION}"
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME sluice)

# --- make package: CPack -------------------------------------------------------------------------
set(CPACK_GENERATOR "TGZ;DEB")
set(CPACK_PACKAGE_NAME "sluice")
set(CPACK_PACKAGE_VENDOR "sluice")
set(CPACK_PACKAGE_CONTACT "sluice maintainers <sluice@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "near-real-time analytics for clickstream and tracking logs")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_FILE_NAME
    "sluice-${PROJECT_VERSION}-${CMAKE_SYSTEM_NAME}-${CMAKE_SYSTEM_PROCESSOR}")
set(CPACK_STRIP_FILES OFF)  # the install rule strips sluice itself and keeps its debug file
set(CPACK_DEBIAN_PACKAGE_SECTION "database")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Depends: computed by dpkg-shlibdeps from the binary's NEEDED libraries (librdkafka1,
# libmariadb3, libsqlite3-0, libssl3, ...); the bundled Arrow/Parquet are private libraries.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
if(SLUICE_ARROW_LIB_DIR)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS "${CMAKE_INSTALL_LIBDIR}/sluice")
endif()
set(CPACK_SOURCE_IGNORE_FILES "/build/;/build-.*/;/\\\\.venv/;/\\\\.git/;__pycache__")
include(CPack)

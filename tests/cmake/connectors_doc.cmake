# docs/connectors.md is generated from the connectors' option tables (`sluice connectors`):
# regenerate it into the build tree and fail, with the command that refreshes it, when the
# checked-in file differs.
add_test(NAME connectors_doc
         COMMAND ${CMAKE_COMMAND} -DSLUICE=$<TARGET_FILE:sluice>
                 -DDOC=${PROJECT_SOURCE_DIR}/docs/connectors.md
                 -DOUT=${CMAKE_CURRENT_BINARY_DIR}/connectors_doc/connectors.md
                 -P ${PROJECT_SOURCE_DIR}/tests/tools/check_connectors_doc.cmake)
set_tests_properties(connectors_doc PROPERTIES TIMEOUT 60 LABELS "house")

# The parquet connector's library (included by the top-level CMakeLists.txt): its sources
# are this folder's *.cc; what it links, below. Registered in src/connectors/builtin.cc.
sluice_connector(parquet sluice_runtime)
# Arrow and Parquet (the pyarrow wheel): headers here, the libraries at the end of the link
# (sluice_lib in the top-level CMakeLists.txt).
if(SLUICE_ARROW_INCLUDE_DIR)
  target_include_directories(sluice_connector_parquet SYSTEM PUBLIC ${SLUICE_ARROW_INCLUDE_DIR})
else()
  foreach(lib ${SLUICE_ARROW_LIBS})
    target_include_directories(sluice_connector_parquet SYSTEM PUBLIC
                               $<TARGET_PROPERTY:${lib},INTERFACE_INCLUDE_DIRECTORIES>)
  endforeach()
endif()

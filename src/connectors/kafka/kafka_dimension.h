#pragma once

#include <memory>

#include "config/option_spec.h"
#include "core/status.h"
#include "operators/dimension.h"

namespace sluice {

/// The options of a kafka:// dimension, besides `refresh` (CheckKafkaDimensionOptions and the poller read them).
const OptionTable& KafkaDimensionOptions();

class DimensionPoller;

/// Follows a dimension through a change-data-capture topic (kafka://HOST:PORT/TOPIC).
///
/// `format` (a [dimension.NAME] option) says what a message holds:
/// - "jdbc" (default): one row as a flat JSON object, as the Kafka Connect JDBC source writes
///   it with schemas disabled; every message upserts its row.
/// - "debezium": a Debezium change event, `{"before":…, "after":…, "op":"c|u|d|r"}`, bare or
///   inside the schema envelope (`{"schema":…, "payload":{…}}`); c, u and r upsert `after`,
///   d deletes the key of `before`; tombstones (empty messages) are skipped.
///
/// The poller reads every partition from the beginning; CatchUp() reads up to the end offsets
/// seen when it starts, so the pipeline's first lookups see the whole table. A message that
/// does not decode, or has no key, is skipped and counted as a refresh error.
class KafkaDimensionPoller;
Result<std::unique_ptr<DimensionPoller>> MakeKafkaDimensionPoller(std::shared_ptr<Dimension> dim);

/// Reads the options of a Kafka dimension (for LoadDimension): fails on an unknown format.
Status CheckKafkaDimensionOptions(const DimensionConfig& config);

}  // namespace sluice

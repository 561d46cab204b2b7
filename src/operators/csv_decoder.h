#pragma once

#include <memory>

#include "core/schema.h"
#include "core/status.h"
#include "operators/decoder.h"

namespace sluice {

/// Creates the CSV decoder behind MakeDecoder(). With `options.header` the column mapping is
/// set by SetHeader() and Decode() fails until then; without it `options.columns` names the
/// columns, and a schema field missing from them makes this fail with InvalidArgument.
Result<std::unique_ptr<Decoder>> MakeCsvDecoder(const DecoderOptions& options,
                                                const Schema& schema);

}  // namespace sluice

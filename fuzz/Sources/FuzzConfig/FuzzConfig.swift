import Daemon
import Foundation

/// libFuzzer entry: a daemon config file (YAML) through the whole validation `sightline check` runs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    _ = try? DaemonConfig.parse(String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self), origin: "fuzz-input")
    return 0
}

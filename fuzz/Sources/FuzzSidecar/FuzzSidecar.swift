import Foundation
@testable import Detector

/// libFuzzer entry: a model's JSON sidecar.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSidecar(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    _ = try? ModelSettings.parse(sidecar: Data(bytes: bytes, count: count), path: "fuzz-input")
    return 0
}

import Foundation
@testable import Detector

/// libFuzzer entry: a label file (plain lines or a label_map.pbtxt).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLabels(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    _ = try? Labels.parse(Data(bytes: bytes, count: count), path: "fuzz-input")
    return 0
}

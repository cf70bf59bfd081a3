import Foundation
@testable import Detector

/// libFuzzer entry: GraphDef bytes through the reader, the importer and the anchor generator.
/// Any outcome but a thrown `ModelError` (a trap, an overflow, an ASan report) is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModel(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    guard let graph = try? GraphDef(data: data), let spec = try? GraphImporter.importNetwork(graph) else { return 0 }
    _ = try? Anchors(settings: ModelSettings(), spec: spec)
    _ = spec.multiplyAccumulates
    return 0
}

import Foundation

/// The parts of a TensorFlow `GraphDef` protobuf that model import needs, read straight from the wire format.
/// (A frozen graph is a few megabytes of `NodeDef`s; a generated protobuf library would cost more than it carries.)
struct GraphDef {
    /// What a detection graph can sensibly hold; anything larger is refused before it is allocated.
    enum Limits {
        /// A frozen SSD graph has a few thousand nodes.
        static let nodes = 100_000
        /// Elements of one tensor (constant or activation): 2^26, 256 MiB of f32.
        static let tensorElements = 1 << 26
    }

    struct Node {
        let name: String
        let op: String
        /// Data inputs as `node` or `node:k`; control inputs (`^node`) are dropped.
        let inputs: [String]
        let attrs: [String: AttrValue]
    }

    enum AttrValue {
        case string(String)
        case int(Int)
        case float(Float)
        case bool(Bool)
        case ints([Int])
        case tensor(Tensor)
        /// A `TensorShapeProto`; -1 for an unknown dimension.
        case shape([Int])
        case other
    }

    struct Tensor {
        enum DType: Int { case float = 1, int32 = 3 }
        let dtype: Int
        let shape: [Int]
        let floats: [Float]
        let ints: [Int]

        /// Element count (checked against `Limits.tensorElements` when read); a scalar-broadcast constant stores one value for many.
        var count: Int { shape.reduce(1, *) }
    }

    let nodes: [Node]
    let byName: [String: Node]

    init(data: Data) throws(ModelError) {
        var nodes: [Node] = []
        let failure: ProtobufReader.Malformed? = data.withUnsafeBytes { (raw) -> ProtobufReader.Malformed? in
            var reader = ProtobufReader(raw)
            do throws(ProtobufReader.Malformed) {
                while let (field, value) = try reader.next() {
                    if field == 1, case .bytes(let nodeBytes) = value {
                        guard nodes.count < Limits.nodes else { throw .refused("the graph has more than \(Limits.nodes) nodes") }
                        nodes.append(try Self.parseNode(nodeBytes))
                    }
                }
                return nil
            } catch {
                return error
            }
        }
        if let failure {
            throw ModelError.malformed(failure.inWireFormat ? "not a TensorFlow GraphDef protobuf (\(failure.reason))" : failure.reason)
        }
        guard !nodes.isEmpty else { throw ModelError.malformed("not a TensorFlow GraphDef protobuf (no nodes)") }
        self.nodes = nodes
        var byName: [String: Node] = [:]
        for node in nodes { byName[node.name] = node }
        self.byName = byName
    }

    private static func parseNode(_ bytes: UnsafeRawBufferPointer) throws(ProtobufReader.Malformed) -> Node {
        var reader = ProtobufReader(bytes)
        var name = "", op = "", inputs: [String] = [], attrs: [String: AttrValue] = [:]
        while let (field, value) = try reader.next() {
            switch (field, value) {
            case (1, .bytes(let b)): name = String(decoding: b, as: UTF8.self)
            case (2, .bytes(let b)): op = String(decoding: b, as: UTF8.self)
            case (3, .bytes(let b)):
                let input = String(decoding: b, as: UTF8.self)
                if !input.hasPrefix("^") { inputs.append(input) }
            case (5, .bytes(let b)):
                do throws(ProtobufReader.Malformed) {
                    let (key, attr) = try parseAttrEntry(b)
                    attrs[key] = attr
                } catch where !error.inWireFormat {
                    throw .refused("node '\(name)': \(error.reason)")
                }
            default: break
            }
        }
        return Node(name: name, op: op, inputs: inputs, attrs: attrs)
    }

    private static func parseAttrEntry(_ bytes: UnsafeRawBufferPointer) throws(ProtobufReader.Malformed) -> (String, AttrValue) {
        var reader = ProtobufReader(bytes)
        var key = "", value = AttrValue.other
        while let (field, v) = try reader.next() {
            switch (field, v) {
            case (1, .bytes(let b)): key = String(decoding: b, as: UTF8.self)
            case (2, .bytes(let b)): value = try parseAttrValue(b)
            default: break
            }
        }
        return (key, value)
    }

    private static func parseAttrValue(_ bytes: UnsafeRawBufferPointer) throws(ProtobufReader.Malformed) -> AttrValue {
        var reader = ProtobufReader(bytes)
        var value = AttrValue.other
        while let (field, v) = try reader.next() {
            switch (field, v) {
            case (1, .bytes(let b)): value = .ints(try parseIntList(b))
            case (2, .bytes(let b)): value = .string(String(decoding: b, as: UTF8.self))
            case (3, .varint(let i)): value = .int(Int(truncatingIfNeeded: i))
            case (4, .fixed32(let f)): value = .float(Float(bitPattern: f))
            case (5, .varint(let b)): value = .bool(b != 0)
            case (7, .bytes(let b)): value = .shape(try parseShape(b))
            case (8, .bytes(let b)): value = .tensor(try parseTensor(b))
            default: break
            }
        }
        return value
    }

    /// `AttrValue.ListValue`: only its packed or repeated `i` (field 3) matters here (strides, dilations).
    private static func parseIntList(_ bytes: UnsafeRawBufferPointer) throws(ProtobufReader.Malformed) -> [Int] {
        var reader = ProtobufReader(bytes)
        var ints: [Int] = []
        while let (field, v) = try reader.next() {
            switch (field, v) {
            case (3, .varint(let i)): ints.append(Int(truncatingIfNeeded: i))
            case (3, .bytes(let b)): ints += try ProtobufReader.packedVarints(b).map { Int(truncatingIfNeeded: $0) }
            default: break
            }
        }
        return ints
    }

    private static func parseTensor(_ bytes: UnsafeRawBufferPointer) throws(ProtobufReader.Malformed) -> Tensor {
        var reader = ProtobufReader(bytes)
        var dtype = 0, shape: [Int] = [], content: UnsafeRawBufferPointer? = nil
        var floatVals: [Float] = [], intVals: [Int] = []
        while let (field, v) = try reader.next() {
            switch (field, v) {
            case (1, .varint(let d)):
                guard let d = Int(exactly: d), d <= Int(Int32.max) else { throw .refused("tensor dtype \(d) is out of range") }
                dtype = d
            case (2, .bytes(let b)): shape = try parseShape(b)
            case (4, .bytes(let b)): content = b
            case (5, .bytes(let b)):
                floatVals += (0..<(b.count / 4)).map { Float(bitPattern: b.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
            case (5, .fixed32(let f)): floatVals.append(Float(bitPattern: f))
            case (7, .bytes(let b)), (10, .bytes(let b)): intVals += try ProtobufReader.packedVarints(b).map { Int(Int32(truncatingIfNeeded: $0)) }
            case (7, .varint(let i)), (10, .varint(let i)): intVals.append(Int(Int32(truncatingIfNeeded: i)))
            default: break
            }
            guard floatVals.count <= Limits.tensorElements, intVals.count <= Limits.tensorElements else {
                throw .refused("a tensor holds more than \(Limits.tensorElements) values")
            }
        }
        let count = try elementCount(shape)
        if let content {
            switch dtype {
            case Tensor.DType.float.rawValue:
                guard content.count == count * 4 else { throw .refused("tensor content size \(content.count) does not match shape \(shape)") }
                floatVals = (0..<count).map { Float(bitPattern: UInt32(littleEndian: content.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            case Tensor.DType.int32.rawValue:
                guard content.count == count * 4 else { throw .refused("tensor content size \(content.count) does not match shape \(shape)") }
                intVals = (0..<count).map { Int(Int32(littleEndian: content.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
            default: break
            }
        }
        // A constant stored as one repeated value stands for a filled tensor.
        if floatVals.count == 1 && count > 1 { floatVals = Array(repeating: floatVals[0], count: count) }
        if intVals.count == 1 && count > 1 { intVals = Array(repeating: intVals[0], count: count) }
        return Tensor(dtype: dtype, shape: shape, floats: floatVals, ints: intVals)
    }

    /// The element count of a constant's shape, refusing negative dimensions and sizes beyond `Limits.tensorElements`.
    private static func elementCount(_ shape: [Int]) throws(ProtobufReader.Malformed) -> Int {
        var count = 1
        for dim in shape {
            guard dim >= 0 else { throw .refused("tensor shape \(shape) has a negative dimension") }
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow, product <= Limits.tensorElements else {
                throw .refused("tensor shape \(shape) has more than \(Limits.tensorElements) elements")
            }
            count = product
        }
        return count
    }

    private static func parseShape(_ bytes: UnsafeRawBufferPointer) throws(ProtobufReader.Malformed) -> [Int] {
        var reader = ProtobufReader(bytes)
        var dims: [Int] = []
        while let (field, v) = try reader.next() {
            guard field == 2, case .bytes(let dim) = v else { continue }
            var dimReader = ProtobufReader(dim)
            var size = 0
            while let (f, dv) = try dimReader.next() {
                if f == 1, case .varint(let s) = dv { size = Int(Int64(bitPattern: s)) }
            }
            guard dims.count < 8 else { throw .refused("tensor shape has more than 8 dimensions") }
            dims.append(size)
        }
        return dims
    }
}

/// A forward-only reader of protobuf wire format over borrowed bytes.
struct ProtobufReader {
    struct Malformed: Error {
        let reason: String
        /// False when the bytes are valid protobuf but what they say is refused (a size beyond a limit, a negative dimension).
        var inWireFormat = true

        static func refused(_ reason: String) -> Malformed { Malformed(reason: reason, inWireFormat: false) }
    }

    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes(UnsafeRawBufferPointer)
    }

    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func next() throws(Malformed) -> (Int, Value)? {
        guard offset < bytes.count else { return nil }
        let key = try varint()
        let field = Int(key >> 3)
        guard field > 0 else { throw Malformed(reason: "field number 0 at byte \(offset)") }
        switch key & 7 {
        case 0: return (field, .varint(try varint()))
        case 1:
            try need(8)
            defer { offset += 8 }
            return (field, .fixed64(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))))
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.count - offset) else { throw Malformed(reason: "length \(length) runs past the end at byte \(offset)") }
            let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + Int(length))])
            offset += Int(length)
            return (field, .bytes(slice))
        case 5:
            try need(4)
            defer { offset += 4 }
            return (field, .fixed32(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))))
        default:
            throw Malformed(reason: "unknown wire type \(key & 7) at byte \(offset)")
        }
    }

    static func packedVarints(_ bytes: UnsafeRawBufferPointer) throws(Malformed) -> [UInt64] {
        var reader = ProtobufReader(bytes)
        var values: [UInt64] = []
        while reader.offset < bytes.count { values.append(try reader.varint()) }
        return values
    }

    private mutating func need(_ n: Int) throws(Malformed) {
        guard bytes.count - offset >= n else { throw Malformed(reason: "truncated at byte \(offset)") }
    }

    private mutating func varint() throws(Malformed) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else { throw Malformed(reason: "truncated varint at byte \(offset)") }
            let byte = bytes[offset]
            offset += 1
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return result }
            shift += 7
            guard shift < 64 else { throw Malformed(reason: "varint too long at byte \(offset)") }
        }
    }
}

/// Why a source could not deliver frames. Each message names the input and the problem.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    public let input: String
    public let reason: String
    public init(input: String, reason: String) {
        self.input = input
        self.reason = reason
    }
    public var description: String { "\(input): \(reason)" }
}

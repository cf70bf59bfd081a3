/// Why a source could not deliver frames. Each message names the input and the problem.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    public let input: String
    public let reason: String
    public init(input: String, reason: String) {
        self.input = input
        self.reason = reason
    }
    /// With any password in the input (or in libav's wording) masked: this is what gets printed and logged.
    public var description: String { Redaction.redactingPasswords("\(input): \(reason)") }
}

import Foundation
import Synchronization
import Values

/// Still images, one after another, as one source: a directory's images in name order, or every file an
/// image-sequence pattern (`img%03d.png`) matches, in number order. Each frame names the file it came from.
public final class ImageListSource: FrameSource {
    public let input: String
    public let isLive = false
    public let frameRate: Double? = nil
    public let files: [String]
    private let sourceID: String
    private let pool = PixelBufferPool()
    /// Held by `next()`.
    private let reading = Mutex(Reading())
    /// Set by `close()`; `next()` checks it between files.
    private let closed = Atomic<Bool>(false)

    private struct Reading {
        var current: (index: Int, source: FFmpegSource)?
        var nextFile = 0
        var sequence = 0
    }

    /// File extensions a directory's images are recognised by (case-insensitive).
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "bmp", "ppm", "pgm", "pbm", "pam", "tif", "tiff",
                                                      "webp", "gif", "tga"]

    public init(input: String, files: [String], sourceID: String? = nil) throws {
        guard !files.isEmpty else {
            throw CaptureError(input: input, reason: "no images (files ending in .\(Self.imageExtensions.sorted().joined(separator: ", .")))")
        }
        self.input = input
        self.files = files
        self.sourceID = sourceID ?? input
    }

    /// The files `input` stands for when it is a directory or an image-sequence pattern, nil for anything else.
    /// Throws `CaptureError` for a directory that cannot be read.
    public static func files(for input: String) throws -> [String]? {
        guard !input.contains("://"), !input.hasPrefix("/dev/") else { return nil }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { return nil }
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: input)
            } catch {
                throw CaptureError(input: input, reason: "cannot read the directory: \(String(cString: strerror(errno)))")
            }
            return names.filter { !$0.hasPrefix(".") && imageExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
                .sorted().map { (input as NSString).appendingPathComponent($0) }
        }
        return try sequence(input)
    }

    /// The files a printf-style pattern (`%d`, `%03d`, `%%` for a percent sign) matches, by number; nil if `input`
    /// is no such pattern.
    private static func sequence(_ input: String) throws -> [String]? {
        // Split by hand: this Foundation's NSString.deletingLastPathComponent traps on a one-character string.
        let slash = input.lastIndex(of: "/")
        let directory = slash.map { String(input[...$0]) } ?? ""
        let name = slash.map { input[input.index(after: $0)...] } ?? Substring(input)
        // The first conversion that is not a literal `%%` (in `a%%d`, the `%d` is text, not a number).
        guard let placeholder = name.matches(of: /%%|%0?\d*d/).first(where: { $0.output != "%%" }) else { return nil }
        func literal(_ text: Substring) -> String {
            NSRegularExpression.escapedPattern(for: text.replacingOccurrences(of: "%%", with: "%"))
        }
        let regex = try? NSRegularExpression(pattern: "^" + literal(name[..<placeholder.range.lowerBound]) + "([0-9]+)"
                                                 + literal(name[placeholder.range.upperBound...]) + "$")
        guard let regex else { return nil }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        // Each file with its number's significant digits: numbers of any length, beyond Int's too, are ordered.
        let numbered = names.compactMap { name -> (number: Substring, name: String)? in
            let range = NSRange(name.startIndex..., in: name)
            guard let match = regex.firstMatch(in: name, range: range), let digits = Range(match.range(at: 1), in: name) else { return nil }
            return (name[digits].drop { $0 == "0" }, name)
        }
        guard !numbered.isEmpty else { throw CaptureError(input: input, reason: "no file matches this image-sequence pattern") }
        return numbered.sorted { a, b in
            if a.number.count != b.number.count { return a.number.count < b.number.count }
            return a.number != b.number ? a.number < b.number : a.name < b.name
        }.map { directory + $0.name }
    }

    /// The next frame `accept` takes, of the current file, then of the next file; nil after the last. Throws
    /// `CaptureError` naming the file that cannot be decoded.
    public func next(accepting accept: (ContinuousClock.Instant) -> Bool) throws -> Frame? {
        try reading.withLock { state in try read(&state, accepting: accept) }
    }

    private func read(_ state: inout Reading, accepting accept: (ContinuousClock.Instant) -> Bool) throws -> Frame? {
        while !closed.load(ordering: .relaxed) {
            if state.current == nil {
                guard state.nextFile < files.count else { return nil }
                state.current = (state.nextFile, try FFmpegSource(input: files[state.nextFile], sourceID: sourceID, pool: pool))
                state.nextFile += 1
            }
            guard let (index, source) = state.current else { continue }
            var declined = 0
            guard let decoded = try source.next(accepting: { instant in
                if accept(instant) { return true }
                declined += 1
                return false
            }) else {
                source.close()
                state.current = nil
                state.sequence += declined
                continue
            }
            state.sequence += declined
            var frame = Frame(sourceID: sourceID, sequence: state.sequence, pts: nil, captureTime: decoded.captureTime,
                              captureInstant: decoded.captureInstant, pixels: decoded.pixels)
            frame.file = files[index]
            state.sequence += 1
            return frame
        }
        return nil
    }

    public func close() {
        closed.store(true, ordering: .relaxed)
    }
}

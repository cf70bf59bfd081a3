import Annotate
import Foundation
import Sink
import Synchronization
import Values

/// `detect --annotate DIR`: frames with detections, drawn with their boxes, labels and scores, as
/// `DIR/<input>-<frame>.jpg`. The frame is copied on its worker thread; drawing and encoding wait for its
/// record, in frame order. The first write error stops the writing and is reported at the end.
final class AnnotatedFrames: Sendable {
    let copies: FrameCopies
    private let directory: URL
    private struct State {
        let encoder = JPEGEncoder()
        var stems: [String: String] = [:]
        var written = 0
        var failure: String?
    }
    private let state: Mutex<State>

    init(directory: String, inputs: [String], copiesHeld: Int) throws {
        self.directory = URL(fileURLWithPath: directory)
        do {
            try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        } catch {
            throw CommandError("--annotate: cannot create the directory \(directory): \(error.localizedDescription)")
        }
        copies = FrameCopies(capacity: copiesHeld)
        // Each input's files start with its file name; a name two inputs share gets -2, -3... on the later ones.
        var stems: [String: String] = [:]
        var taken: Set<String> = []
        for input in inputs where stems[input] == nil {
            let base = Self.fileSafe((input as NSString).lastPathComponent)
            var stem = base, suffix = 2
            while taken.contains(stem) {
                stem = "\(base)-\(suffix)"
                suffix += 1
            }
            taken.insert(stem)
            stems[input] = stem
        }
        state = Mutex(State(stems: stems))
    }

    private static func fileSafe(_ name: String) -> String {
        let safe = String(name.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0) ? Character($0) : "_" })
        return safe.isEmpty || safe.hasPrefix(".") ? "input\(safe)" : safe
    }

    /// For the pipeline's frame tap: only frames with detections are drawn.
    func keep(_ frame: Frame, detections: [Detection]) {
        if !detections.isEmpty { copies.keep(frame) }
    }

    /// Draws the record on its frame's copy and writes the JPEG.
    func write(_ record: DetectionRecord) {
        guard let pixels = copies.take(source: record.source, frame: record.frame) else { return }
        defer { pixels.recycle() }
        state.withLock { state in
            guard state.failure == nil else { return }
            let stem = state.stems[record.source] ?? Self.fileSafe(record.source)
            let file = directory.appendingPathComponent(String(format: "%@-%06d.jpg", stem, record.frame))
            do {
                Annotator.draw(record.detections, on: pixels)
                try Data(state.encoder.encode(pixels)).write(to: file)
                state.written += 1
            } catch {
                state.failure = "--annotate: cannot write \(file.path): \(error.localizedDescription)"
            }
        }
    }

    /// Why writing stopped, if it did.
    var failure: String? { state.withLock { $0.failure } }
}

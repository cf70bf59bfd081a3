import ArgumentParser
import Capture
import Detector
import Foundation
import Values

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure activation ranges for int8 on sample frames and write the model's calibration file.",
        discussion: """
            Runs the f32 network over frames of the inputs (videos, images, image sequences), chooses each tensor's \
            int8 range, writes them beside the model (model.calibration.json next to model.pb, where `auto` finds \
            them) and reports how closely int8 then reproduces f32 on those frames.
            """)

    @Option(help: "Frozen graph (.pb) of an SSD MobileNetV2 model.")
    var model: String = ModelLocation.defaultModel

    @Option(help: "Frames to calibrate on, spread over the inputs.")
    var frames: Int = 40

    @Option(help: "Use every Nth frame of a video.")
    var every: Int = 5

    @Option(help: "How ranges are chosen: mse (rounding plus clipping error) or percentile (99.99th of |activation|).")
    var method: CalibrationCollector.Method = .mse

    @Option(name: .shortAndLong, help: "Output file (default: model.calibration.json beside the model).")
    var output: String?

    @Argument(help: "Videos, images or image sequences with the kind of scenes the model will see.")
    var inputs: [String]

    mutating func validate() throws {
        guard (1...10_000).contains(frames) else { throw ValidationError("--frames must be between 1 and 10000") }
        guard (1...100_000).contains(every) else { throw ValidationError("--every must be between 1 and 100000") }
        guard !inputs.isEmpty else { throw ValidationError("give at least one input") }
        guard output != "" else { throw ValidationError("--output is empty: give the calibration file's path") }
    }

    func run() throws {
        let destination = output ?? Calibration.path(forModel: model)
        try failingCleanly { try Self.checkDestination(destination) }
        let f32 = try failingCleanly { try Model(path: model, precision: .f32) }
        let collector = try failingCleanly { try CalibrationCollector(model: f32) }
        let samples = try failingCleanly { try sampleFrames() }
        guard !samples.isEmpty else {
            reportError("no frames decoded from \(inputs.joined(separator: ", "))")
            throw ExitCode(1)
        }
        try failingCleanly { for frame in samples { try collector.add(frame) } }
        let calibration = collector.calibration(method: method)
        try failingCleanly {
            do { try calibration.write(to: destination) } catch { throw CommandError("cannot write \(destination): \(error.localizedDescription)") }
        }
        // How closely int8 with these ranges follows f32 on the same frames.
        let int8 = try failingCleanly { try Model(path: model, precision: .int8, calibrationPath: destination) }
        var agreement = DetectionAgreement()
        try failingCleanly {
            let reference = try f32.makeDetector(), candidate = try int8.makeDetector()
            for frame in samples {
                agreement.add(reference: try reference.detect(frame, threshold: 0), candidate: try candidate.detect(frame, threshold: 0))
            }
        }
        print("wrote \(destination): \(calibration.ranges.count) tensor ranges (\(method.rawValue)) from \(samples.count) frames")
        print("int8 against f32 on these frames: \(agreement.summary)")
    }

    /// Refuses, before any work, a destination the calibration file cannot or must not replace. The file is
    /// written by rename, which would replace a device, FIFO or socket (run as root, `-o /dev/null` replaced
    /// /dev/null with a regular file), so only a regular file or a new name in an existing directory will do.
    static func checkDestination(_ path: String) throws(CommandError) {
        guard !path.hasSuffix("/") else { throw CommandError("cannot write \(path): names a directory, not a file") }
        if let type = FileType(path: path) {
            guard type == .regular else {
                let kind = type == .directory ? "a directory" : "not a regular file (\(type))"
                throw CommandError("cannot write \(path): it is \(kind); give a file's path")
            }
        } else if errno != ENOENT {
            throw CommandError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard FileType(path: directory) == .directory else {
            throw CommandError("cannot write \(path): \(directory) is not an existing directory")
        }
        guard access(directory, W_OK) == 0 else {
            throw CommandError("cannot write \(path): \(directory): \(String(cString: strerror(errno)))")
        }
    }

    /// Up to `frames` frames, the same share from each input, every `every`th frame of a video.
    private func sampleFrames() throws -> [PixelBuffer] {
        let share = (frames + inputs.count - 1) / inputs.count
        var samples: [PixelBuffer] = []
        for input in inputs {
            let source = try FFmpegSource(input: input)
            defer { source.close() }
            var taken = 0
            while taken < share, samples.count < frames, let frame = try source.next() {
                if frame.sequence % every == 0 {
                    let copy = PixelBuffer(width: frame.width, height: frame.height)
                    copy.bytes.copyMemory(from: frame.pixels.bytes, byteCount: frame.pixels.rowBytes * frame.height)
                    samples.append(copy)
                    taken += 1
                }
                frame.pixels.recycle()
            }
        }
        return samples
    }
}

extension CalibrationCollector.Method: ExpressibleByArgument {}

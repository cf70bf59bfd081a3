import ArgumentParser
import Daemon
import Detector
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure forward-pass latency on one thread and throughput with N worker threads.")

    @Option(help: "Frozen graph (.pb) of an SSD MobileNetV2 model.")
    var model: String = ModelLocation.defaultModel

    @Option(help: "Numeric precision: auto (the fastest this CPU and model are ready for), f32, bf16 or int8.")
    var precision: PrecisionChoice = .auto

    @Option(help: "Worker threads for the throughput run, each with its own engine; 0 means one per core.")
    var threads: Int = 0

    @Option(help: "Timed forward passes per measurement.")
    var iterations: Int = 200

    @Flag(help: "One JSON line per measurement.")
    var json = false

    /// scripts/bench-drawing.sh: time the preview's drawing and JPEG encode instead (DrawingBench).
    @Option(help: .hidden) var drawingFrames: String?
    @Option(help: .hidden) var drawingRecords: String?
    @Option(help: .hidden) var drawingSize: String = "768x576"
    @Option(help: .hidden) var drawingRounds: Int = 5

    mutating func validate() throws {
        try checkRange("--threads", threads, ConfigLimits.workers, zeroMeaning: "one per core")
        try checkRange("--iterations", iterations, 1...100_000)
    }

    func run() throws {
        if let drawingFrames, let drawingRecords {
            let size = drawingSize.split(separator: "x").compactMap { Int($0) }
            guard size.count == 2, size.allSatisfy({ (1...8192).contains($0) }), (1...1000).contains(drawingRounds) else {
                throw ValidationError("--drawing-size must be WIDTHxHEIGHT and --drawing-rounds 1...1000")
            }
            print(try failingCleanly {
                try DrawingBench.run(frames: drawingFrames, records: drawingRecords, width: size[0], height: size[1], rounds: drawingRounds)
            })
            return
        }
        let result = try failingCleanly {
            try Benchmark.run(modelPath: model, precision: precision, threads: workerThreads(threads), iterations: iterations)
        }
        for line in result.report(json: json) { print(line) }
    }
}

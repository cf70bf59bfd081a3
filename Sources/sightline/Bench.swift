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

    mutating func validate() throws {
        try checkRange("--threads", threads, ConfigLimits.workers, zeroMeaning: "one per core")
        try checkRange("--iterations", iterations, 1...100_000)
    }

    func run() throws {
        let result = try failingCleanly {
            try Benchmark.run(modelPath: model, precision: precision, threads: workerThreads(threads), iterations: iterations)
        }
        for line in result.report(json: json) { print(line) }
    }
}

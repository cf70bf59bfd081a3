import Detector
import Foundation
import Synchronization
import Values

/// Forward-pass timings: median and p90 latency on one thread, then throughput with N threads,
/// each owning an engine (the worker pool's shape), all over the same shared model.
struct Benchmark {
    struct Measurement {
        let threads: Int
        let medianMs: Double
        let p90Ms: Double
        let minMs: Double
        let fps: Double
    }

    let loadToFirstInferenceMs: Double
    let measurements: [Measurement]
    let macs: Int
    let precision: PrecisionSelection

    static func run(modelPath: String, precision: PrecisionChoice, threads: Int, iterations: Int) throws -> Benchmark {
        let clock = ContinuousClock()
        let start = clock.now
        let model = try Model(path: modelPath, precision: precision)
        let first = try model.makeDetector()
        fillDeterministic(first.input)
        try first.forward()
        let loadMs = (clock.now - start) / .milliseconds(1)

        var measurements = [try measure(model: model, detectors: [first], iterations: iterations)]
        if threads > 1 {
            let detectors = try [first] + (1..<threads).map { _ in try model.makeDetector() }
            measurements.append(try measure(model: model, detectors: detectors, iterations: iterations))
        }
        return Benchmark(loadToFirstInferenceMs: loadMs, measurements: measurements, macs: model.multiplyAccumulates,
                         precision: model.precision)
    }

    /// Each detector runs `iterations` timed passes (after a warm-up) on its own thread, all at once.
    private static func measure(model: Model, detectors: [Detector], iterations: Int) throws -> Measurement {
        let warmup = 20
        let results = ThreadResults()
        let group = DispatchGroup()
        let threads = detectors.enumerated().map { index, detector in
            Thread(named: "sl-bench-\(index)") {
                do {
                    fillDeterministic(detector.input)
                    for _ in 0..<warmup { try detector.forward() }
                    var mine: [Double] = []
                    mine.reserveCapacity(iterations)
                    for _ in 0..<iterations {
                        let t = ContinuousClock.now
                        try detector.forward()
                        mine.append((ContinuousClock.now - t) / .milliseconds(1))
                    }
                    results.add(mine)
                } catch {
                    results.fail(error)
                }
                group.leave()
            }
        }
        for thread in threads {
            group.enter()
            thread.stackSize = 8 << 20
            thread.start()
        }
        group.wait()
        if let error = results.firstError { throw error }
        let all = results.latencies.sorted()
        // Throughput over the timed passes only: every thread's timed passes run concurrently.
        let perThreadTimed = all.reduce(0, +) / Double(detectors.count)
        return Measurement(threads: detectors.count, medianMs: all[all.count / 2], p90Ms: all[Int(Double(all.count) * 0.9)],
                           minMs: all[0], fps: Double(all.count) / (perThreadTimed / 1000))
    }

    func report(json: Bool) -> [String] {
        if json {
            let tag = #""runtime":"sightline-onednn","precision":"\#(precision.precision.rawValue)""#
            var lines = measurements.map { m in
                #"{\#(tag),"threads":\#(m.threads),"median_ms":\#(round3(m.medianMs)),"p90_ms":\#(round3(m.p90Ms)),"min_ms":\#(round3(m.minMs)),"fps":\#(round3(m.fps))}"#
            }
            lines.append(#"{\#(tag),"precision_reason":\#(jsonString(precision.reason)),"load_to_first_inference_ms":\#(round3(loadToFirstInferenceMs))}"#)
            return lines
        }
        var lines = ["precision: \(precision.precision.rawValue) (\(precision.reason))",
                     "model load to first inference: \(round3(loadToFirstInferenceMs)) ms"]
        for m in measurements {
            let gmacs = Double(macs) * m.fps / 1e9
            lines.append("\(m.threads) thread\(m.threads == 1 ? "" : "s"): median \(round3(m.medianMs)) ms, p90 \(round3(m.p90Ms)) ms, "
                         + "min \(round3(m.minMs)) ms, \(round3(m.fps)) frames/s (\(round3(gmacs)) G MAC/s)")
        }
        return lines
    }
}

/// Values in [-1, 1], like a normalized image; the same every run.
private func fillDeterministic(_ input: UnsafeMutableBufferPointer<Float>) {
    for i in input.indices { input[i] = Float((i * 7919 + 13) % 2001) / 1000 - 1 }
}

private func jsonString(_ text: String) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
    return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
}

private func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

/// What the benchmark threads measured, or the first error one of them hit.
private final class ThreadResults: Sendable {
    private let state = Mutex<(measured: [Double], error: Error?)>(([], nil))
    func add(_ values: [Double]) { state.withLock { $0.measured += values } }
    func fail(_ error: Error) { state.withLock { if $0.error == nil { $0.error = error } } }
    var latencies: [Double] { state.withLock { $0.measured } }
    var firstError: Error? { state.withLock { $0.error } }
}

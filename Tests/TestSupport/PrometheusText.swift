import Foundation

/// A strict reader of the Prometheus text exposition format (0.0.4): every line is a `# HELP`, a `# TYPE` (before
/// its samples, once per family) or a sample `name{label="value",...} number`; histogram buckets must be cumulative
/// and end with `+Inf` equal to `_count`. Returns samples by `name{labels sorted}`.
public enum PrometheusText {
    public struct Invalid: Error, CustomStringConvertible { public let description: String }

    public static func parse(_ text: String) throws -> [String: Double] {
        var samples: [String: Double] = [:]
        var types: [String: String] = [:]
        var buckets: [String: [(le: Double, count: Double)]] = [:]
        let name = /[a-zA-Z_:][a-zA-Z0-9_:]*/
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let where_ = "line \(index + 1): \(line)"
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3)
                guard parts.count >= 3, parts[1] == "HELP" || parts[1] == "TYPE", (try? name.wholeMatch(in: parts[2])) != nil else {
                    throw Invalid(description: "\(where_): not a HELP or TYPE line")
                }
                if parts[1] == "TYPE" {
                    guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                        throw Invalid(description: "\(where_): unknown type")
                    }
                    guard types[String(parts[2])] == nil else { throw Invalid(description: "\(where_): a second TYPE for the family") }
                    types[String(parts[2])] = String(parts[3])
                }
                continue
            }
            guard let match = try /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.wholeMatch(in: line) else {
                throw Invalid(description: "\(where_): not a sample")
            }
            let metric = String(match.1)
            var labels: [(String, String)] = []
            if let list = match.3, !list.isEmpty {
                for pair in list.split(separator: ",") {
                    guard let label = try /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/.wholeMatch(in: pair) else {
                        throw Invalid(description: "\(where_): bad label \(pair)")
                    }
                    labels.append((String(label.1), String(label.2)))
                }
            }
            guard let value = Double(match.4) ?? (match.4 == "+Inf" ? .infinity : nil) else {
                throw Invalid(description: "\(where_): value is not a number")
            }
            let family = ["_bucket", "_count", "_sum", "_total"].reduce(metric) { family, suffix in
                types[family] == nil && family.hasSuffix(suffix) && types[String(family.dropLast(suffix.count))] != nil
                    ? String(family.dropLast(suffix.count)) : family
            }
            guard let type = types[family] ?? types[metric] else { throw Invalid(description: "\(where_): sample before its TYPE") }
            if type == "counter" && value < 0 { throw Invalid(description: "\(where_): a negative counter") }
            let others = labels.filter { $0.0 != "le" }.sorted { $0.0 < $1.0 }
            let key = others.isEmpty ? "" : "{" + others.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ",") + "}"
            if type == "histogram" && metric.hasSuffix("_bucket") {
                guard let le = labels.first(where: { $0.0 == "le" }), let bound = le.1 == "+Inf" ? .infinity : Double(le.1) else {
                    throw Invalid(description: "\(where_): a bucket without le")
                }
                buckets[family + key, default: []].append((bound, value))
                continue
            }
            samples[metric + key] = value
        }
        for (series, list) in buckets {
            guard list.map(\.le) == list.map(\.le).sorted(), list.map(\.count) == list.map(\.count).sorted(), list.last?.le == .infinity else {
                throw Invalid(description: "\(series): buckets not cumulative or without +Inf")
            }
            let family = String(series.prefix { $0 != "{" }), labels = String(series.drop { $0 != "{" })
            guard samples[family + "_count" + labels] == list.last?.count else {
                throw Invalid(description: "\(series): +Inf bucket differs from _count")
            }
        }
        return samples
    }
}

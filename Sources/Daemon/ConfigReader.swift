import Foundation
import Values
import Yams

/// Walks the composed YAML tree, converting values and recording every problem it finds.
struct ConfigReader {
    let origin: String
    let baseDirectory: String?
    let environment: [String: String]
    var problems: [ConfigError.Problem] = []
    var lines = KeyLines()

    init(origin: String, baseDirectory: String?, environment: [String: String]) {
        self.origin = origin
        self.baseDirectory = baseDirectory
        self.environment = environment
    }

    mutating func problem(_ node: Node?, _ path: String, _ message: String) {
        problems.append(ConfigError.Problem(origin: origin, line: node?.mark?.line, keyPath: path, message: message))
    }

    // MARK: Values

    /// The fields of a mapping, after reporting keys that are not in `keys` (with a suggestion for typos).
    mutating func mapping(_ node: Node, _ path: String, keys: [String]) -> [String: Node]? {
        guard case .mapping(let pairs) = node else {
            problem(node, path, "must be a mapping of keys (\(keys.joined(separator: ", "))), got \(kind(node))")
            return nil
        }
        var fields: [String: Node] = [:]
        for (key, value) in pairs {
            guard case .scalar(let scalar) = key else {
                problem(key, path, "keys must be plain names, got \(kind(key))")
                continue
            }
            let name = scalar.string
            let keyPath = path.isEmpty ? name : "\(path).\(name)"
            guard keys.contains(name) else {
                var message = "unknown key"
                if let guess = Self.closest(to: name, in: keys) { message += " (did you mean \"\(guess)\"?)" }
                problem(key, keyPath, message + "; known keys: \(keys.joined(separator: ", "))")
                continue
            }
            lines.set(keyPath, line: key.mark?.line)
            fields[name] = value
        }
        return fields
    }

    /// A path-like string (nil for null), resolved against the config file's directory if relative.
    mutating func path(_ node: Node, _ path: String) -> String? {
        if node.isNull { return nil }
        guard let value = string(node, path) else { return nil }
        return resolve(value)
    }

    func resolve(_ value: String) -> String {
        guard let baseDirectory, !value.hasPrefix("/") else { return value }
        return URL(fileURLWithPath: baseDirectory, isDirectory: true).appendingPathComponent(value).standardized.path
    }

    /// Inputs that are neither URLs nor absolute paths are files relative to the config file.
    func resolveInput(_ value: String) -> String { value.contains("://") ? value : resolve(value) }

    /// A non-empty string: any non-null scalar, with `${NAME}` and `${credential:NAME}` substituted.
    mutating func string(_ node: Node, _ path: String) -> String? {
        guard let written = nonNullScalar(node, path) else { return nil }
        guard let value = substitute(written, node, path) else { return nil }
        if value.trimmingCharacters(in: .whitespaces).isEmpty {
            problem(node, path, "must not be empty")
            return nil
        }
        return value
    }

    /// Replaces `${NAME}` with the environment variable and `${credential:NAME}` with the systemd credential
    /// (`$CREDENTIALS_DIRECTORY/NAME`, one trailing newline dropped); `$${` stands for a literal `${`.
    /// Nil, after reporting it, when a reference cannot be resolved. Messages never include a resolved value.
    mutating func substitute(_ text: String, _ node: Node, _ path: String) -> String? {
        guard text.contains("${") else { return text }
        var result = ""
        var rest = Substring(text)
        var ok = true
        while let dollar = rest.range(of: "${") {
            if rest[..<dollar.lowerBound].hasSuffix("$") {
                result += rest[..<rest.index(before: dollar.lowerBound)] + "${"
                rest = rest[dollar.upperBound...]
                continue
            }
            result += rest[..<dollar.lowerBound]
            guard let close = rest[dollar.upperBound...].firstIndex(of: "}") else {
                problem(node, path, "unterminated \"${\" (write \"$${\" for a literal \"${\")")
                return nil
            }
            let reference = String(rest[dollar.upperBound..<close])
            rest = rest[rest.index(after: close)...]
            if let value = resolve(reference: reference, node, path) { result += value } else { ok = false }
        }
        return ok ? result + rest : nil
    }

    mutating func resolve(reference: String, _ node: Node, _ path: String) -> String? {
        let isName = { (name: Substring) in
            !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }
                && name != "." && name != ".."
        }
        if reference.hasPrefix("credential:") {
            let name = reference.dropFirst("credential:".count)
            guard isName(name) else {
                problem(node, path, "\"${\(reference)}\": a credential name is letters, digits, '_', '-' and '.'")
                return nil
            }
            guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else {
                problem(node, path, "credential \"\(name)\": $CREDENTIALS_DIRECTORY is not set "
                            + "(give the unit LoadCredential=\(name):FILE, see docs/CONFIG.md)")
                return nil
            }
            let file = URL(fileURLWithPath: directory).appendingPathComponent(String(name)).path
            return secret(inFile: file, node, path, subject: "credential \"\(name)\": ")
        }
        guard isName(Substring(reference)), !reference.contains("-"), !reference.contains("."),
              !(reference.first?.isNumber ?? true) else {
            problem(node, path, "\"${\(reference)}\": write ${NAME} for an environment variable or ${credential:NAME} for a systemd credential")
            return nil
        }
        guard let value = environment[reference] else {
            problem(node, path, "environment variable \(reference) is not set")
            return nil
        }
        return value
    }

    mutating func nonNullScalar(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            problem(node, path, "must be a single value, got \(kind(node))")
            return nil
        }
        if node.isNull {
            problem(node, path, "must have a value, got null")
            return nil
        }
        return scalar.string
    }

    mutating func number(_ node: Node, _ path: String) -> Double? {
        let tag = node.tagName
        if case .scalar = node, tag == .int || tag == .float, let value = node.float, value.isFinite { return value }
        problem(node, path, "must be a number, got \(describe(node))")
        return nil
    }

    /// A number within `range`.
    mutating func number(_ node: Node, _ path: String, in range: ClosedRange<Double>, unit: String = "") -> Double? {
        guard let value = number(node, path) else { return nil }
        guard range.contains(value) else {
            problem(node, path, "must be between \(format(range.lowerBound)) and \(format(range.upperBound))\(unit), got \(format(value))")
            return nil
        }
        return value
    }

    mutating func positive(_ node: Node, _ path: String, atMost limit: Double) -> Double? {
        guard let value = number(node, path) else { return nil }
        guard value > 0 else {
            problem(node, path, "must be greater than 0, got \(format(value))")
            return nil
        }
        guard value <= limit else {
            problem(node, path, "must be at most \(format(limit)), got \(format(value))")
            return nil
        }
        return value
    }

    /// A frame rate: 0.001 (one frame in ~17 minutes) to 1000 per second.
    mutating func rate(_ node: Node, _ path: String) -> Double? {
        guard let value = positive(node, path, atMost: ConfigLimits.framesPerSecond.upperBound) else { return nil }
        guard value >= ConfigLimits.framesPerSecond.lowerBound else {
            problem(node, path, "must be at least 0.001 frames per second, got \(format(value))")
            return nil
        }
        return value
    }

    mutating func score(_ node: Node, _ path: String) -> Float? {
        guard let value = number(node, path) else { return nil }
        guard (0...1).contains(value) else {
            problem(node, path, "must be between 0 and 1, got \(format(value))")
            return nil
        }
        return Float(value)
    }

    mutating func integer(_ node: Node, _ path: String) -> Int? {
        if case .scalar = node, node.tagName == .int, let value = node.int { return value }
        // Too large for Int: still a whole number, so say so as a range error.
        if case .scalar(let scalar) = node, node.tagName == .int, node.int == nil {
            problem(node, path, "is far too large, got \(scalar.string)")
            return nil
        }
        problem(node, path, "must be a whole number, got \(describe(node))")
        return nil
    }

    /// A whole number within `range`; `zeroMeaning` explains a lower bound of 0.
    mutating func integer(_ node: Node, _ path: String, in range: ClosedRange<Int>, zeroMeaning: String? = nil) -> Int? {
        guard let value = integer(node, path) else { return nil }
        guard range.contains(value) else {
            let low = zeroMeaning.map { "\(range.lowerBound) (\($0))" } ?? "\(range.lowerBound)"
            problem(node, path, "must be between \(low) and \(range.upperBound), got \(value)")
            return nil
        }
        return value
    }

    mutating func boolean(_ node: Node, _ path: String) -> Bool? {
        if case .scalar = node, node.tagName == .bool, let value = node.bool { return value }
        problem(node, path, "must be true or false, got \(describe(node))")
        return nil
    }

    // MARK: Wording

    func kind(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar: return describe(node)
        }
    }

    func describe(_ node: Node) -> String {
        guard case .scalar(let scalar) = node else { return kind(node) }
        if node.isNull { return "null" }
        return "\"\(scalar.string)\""
    }

    func format(_ value: Double) -> String { String(format: "%g", value) }

    /// The known key a typo most likely meant: within an edit distance of 2 (or a case difference).
    static func closest(to name: String, in keys: [String]) -> String? {
        let lowered = name.lowercased().replacingOccurrences(of: "-", with: "_")
        if let exact = keys.first(where: { $0 == lowered }) { return exact }
        let best = keys.map { ($0, distance(Array(lowered), Array($0))) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= max(1, min(2, name.count / 3)) else { return nil }
        return best.0
    }

    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

extension Node {
    var isNull: Bool {
        if case .scalar = self { return tagName == .null }
        return false
    }

    /// The resolved tag (plain scalars are typed by their text; quoted ones are strings).
    var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }
}

extension ConfigReader {
    /// A secret kept in a file (a systemd credential, `mqtt.password_file`): its UTF-8 text without one trailing
    /// newline. `subject` starts the problem's message, e.g. `credential "db": `.
    mutating func secret(inFile file: String, _ node: Node, _ path: String, subject: String = "") -> String? {
        if let refusal = FileType.refusalToRead(file) {
            problem(node, path, "\(subject)cannot read \(file): \(refusal)")
            return nil
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            let reason = FileManager.default.fileExists(atPath: file) ? "cannot read" : "no such file"
            problem(node, path, "\(subject)\(reason) \(file)")
            return nil
        }
        guard var value = String(data: data, encoding: .utf8) else {
            problem(node, path, "\(subject)\(file) is not UTF-8 text")
            return nil
        }
        if value.hasSuffix("\r\n") { value.removeLast(1) } else if value.hasSuffix("\n") { value.removeLast() }
        return value
    }
}

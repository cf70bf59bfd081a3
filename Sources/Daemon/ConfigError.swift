import Capture
import Yams

/// Every problem found in a config file; `description` lists them one per line.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// The file (or other origin) the config came from.
        public var origin: String
        /// 1-based line, where known.
        public var line: Int?
        /// Where in the document, e.g. `sources[1].policy`; empty for the file as a whole.
        public var keyPath: String
        public var message: String

        public init(origin: String, line: Int?, keyPath: String, message: String) {
            self.origin = origin
            self.line = line
            self.keyPath = keyPath
            self.message = message
        }

        /// `origin:line: key.path: message`, leaving out what is unknown; a password in a URL is masked.
        public var description: String {
            var text = origin
            if let line { text += ":\(line)" }
            text += ": "
            if !keyPath.isEmpty { text += keyPath + ": " }
            return Redaction.redactingPasswords(text + message)
        }

        init(syntax error: YamlError, origin: String) {
            switch error {
            case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
                 let .composer(context, problem, mark, _):
                var message = "YAML syntax error at column \(mark.column): \(problem)"
                if let context { message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))" }
                self.init(origin: origin, line: mark.line, keyPath: "", message: message)
            case let .duplicatedKeysInMapping(duplicates, context):
                let keys = duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
                let noun = duplicates.count == 1 ? "key" : "keys"
                self.init(origin: origin, line: context.mark.line, keyPath: "",
                          message: "\(noun) \(keys) given more than once in the same mapping (first here)")
            case let .reader(problem, offset, _, _):
                self.init(origin: origin, line: nil, keyPath: "",
                          message: "YAML reader error: \(problem)" + (offset.map { " at character \($0)" } ?? ""))
            default:
                self.init(origin: origin, line: nil, keyPath: "", message: "YAML error: \(error)")
            }
        }
    }

    public var problems: [Problem]

    public init(_ problems: [Problem]) { self.problems = problems }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

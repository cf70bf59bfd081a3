import Glibc

/// What kind of file a path names (following symbolic links), as `stat` tells it.
public enum FileType: Sendable, Equatable, CustomStringConvertible {
    case regular, directory, characterDevice, blockDevice, fifo, socket, other

    /// The type of what `path` names; nil when `stat` fails (`errno` says why).
    public init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        default: self = .other
        }
    }

    public var description: String {
        switch self {
        case .regular: "a regular file"
        case .directory: "a directory"
        case .characterDevice: "a character device"
        case .blockDevice: "a block device"
        case .fifo: "a FIFO"
        case .socket: "a socket"
        case .other: "an unknown kind of file"
        }
    }

    /// Why `path` cannot be read as a file (a config, model or label file), e.g. "not a regular file (a FIFO)";
    /// nil for a regular file, or when `stat` fails (opening it then says why). Asked before opening: reading a
    /// FIFO waits for a writer that may never come, and a device or socket has no contents of a file to read.
    public static func refusalToRead(_ path: String) -> String? {
        switch FileType(path: path) {
        case nil, .regular?: nil
        case .directory?: "is a directory"
        case let type?: "not a regular file (\(type))"
        }
    }
}

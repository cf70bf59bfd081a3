import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension Thread {
    /// The longest thread name Linux keeps (16 bytes with the terminating NUL); it refuses a longer one whole.
    public static let maximumNameBytes = 15

    /// A thread that names itself as it starts, so that `top -H`, `ps -L`, perf and gdb show what it is.
    /// Foundation's `name` does not reach the OS on Linux when set before `start()` (the thread shows the
    /// process's name), so the thread sets its own; `name` is cut to fit `maximumNameBytes` on a character boundary.
    public convenience init(named name: String, block: @escaping @Sendable () -> Void) {
        let osName = Thread.fittingName(name)
        self.init {
            #if os(Linux)
            _ = setThreadName?(pthread_self(), osName)
            #endif
            block()
        }
    }

    /// `name` cut to at most `maximumNameBytes` of UTF-8, whole characters only.
    public static func fittingName(_ name: String) -> String {
        var cut = Substring(name)
        while cut.utf8.count > maximumNameBytes { cut.removeLast() }
        return String(cut)
    }
}

#if os(Linux)
private typealias SetThreadName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
/// glibc's `pthread_setname_np`, looked up at run time: Swift's Glibc module leaves out this GNU extension.
private let setThreadName: SetThreadName? = dlsym(nil, "pthread_setname_np").map { unsafeBitCast($0, to: SetThreadName.self) }
#endif

import DiskImage
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One disk's child process: `fwassemble assemble ...` with its own address-space limit
/// (RLIMIT_AS, set between fork and exec) and wall-clock limit (SIGKILL when it passes), its
/// standard error kept in an unnamed temporary file, its peak RSS from wait4's rusage.
struct ChildProcess {
    struct Outcome {
        /// Exit status when it exited, nil when a signal ended it.
        var exitCode: Int32?
        var signal: Int32?
        var timedOut: Bool
        var seconds: Double
        /// ru_maxrss, in bytes.
        var peakRSS: UInt64
        /// What it wrote on standard error (the last 64 KiB).
        var stderr: String
    }

    let executable: String
    let arguments: [String]
    /// What the child reads on standard input (its request).
    var input: [UInt8] = []
    var memoryLimit: UInt64?
    var timeout: Double?

    func run() throws -> Outcome {
        let errFD = try Self.unnamedTemporaryFile()
        defer { close(errFD) }
        // The child reads nothing and writes nothing to standard output: /dev/null, or, where the
        // machine has none (a container without /dev), an unlinked temporary file.
        var nullFD = open("/dev/null", O_RDWR | O_CLOEXEC)
        if nullFD < 0 { nullFD = try Self.unnamedTemporaryFile() }
        defer { close(nullFD) }
        // Standard input: the request, from an unlinked temporary file read from its start.
        let inputFD = try Self.unnamedTemporaryFile()
        defer { close(inputFD) }
        let wrote = input.withUnsafeBytes { pwrite(inputFD, $0.baseAddress, $0.count, 0) }
        guard wrote == input.count else { throw FWError(.io, "cannot write the request of \(executable)") }

        // Everything the child touches is made before fork: after it, only async-signal-safe
        // calls (dup2, setrlimit, execv, _exit).
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var limit = rlimit(rlim_cur: rlim_t(memoryLimit ?? 0), rlim_max: rlim_t(memoryLimit ?? 0))
        let limitMemory = memoryLimit != nil
        let resource = __rlimit_resource_t(RLIMIT_AS.rawValue)
        let execFailed = Array("fwassemble: cannot execute \(executable)\(memoryLimit.map { " within a memory limit of \($0 >> 20) MiB" } ?? "")\n".utf8)
        let start = Date()

        let pid = fork()
        if pid == 0 {
            _ = dup2(inputFD, 0)
            _ = dup2(nullFD, 1)
            _ = dup2(errFD, 2)
            if limitMemory { _ = setrlimit(resource, &limit) }
            _ = argv.withUnsafeBufferPointer { execv($0[0]!, $0.baseAddress!) }
            _ = execFailed.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            _exit(127)
        }
        guard pid > 0 else { throw FWError(.io, "cannot fork: \(String(cString: strerror(errno)))") }

        var status: Int32 = 0
        var usage = rusage()
        var timedOut = false
        var forwarded = false
        var pause: useconds_t = 1_000
        while true {
            let r = wait4(pid, &status, WNOHANG, &usage)
            if r == pid { break }
            if r < 0, errno != EINTR { throw FWError(.io, "wait4: \(String(cString: strerror(errno)))") }
            // A signal to the batch goes on to the child, which removes its output and ends;
            // the batch waits for it (never leaves it running).
            if !forwarded, let signal = Cancellation.process.signalNumber {
                kill(pid, signal)
                forwarded = true
            }
            if let timeout, !timedOut, Date().timeIntervalSince(start) >= timeout {
                kill(pid, SIGKILL)
                timedOut = true
            }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        let seconds = Date().timeIntervalSince(start)
        // WIFEXITED / WTERMSIG are C macros: the low 7 bits are the signal, 0 for an exit.
        let signal = status & 0x7F
        return Outcome(exitCode: signal == 0 ? (status >> 8) & 0xFF : nil, signal: signal == 0 ? nil : signal,
                       timedOut: timedOut, seconds: seconds, peakRSS: UInt64(max(usage.ru_maxrss, 0)) * 1024,
                       stderr: Self.tail(of: errFD))
    }

    static func unnamedTemporaryFile() throws -> Int32 {
        let env = getenv("TMPDIR").map { String(cString: $0) }
        let dir = (env?.isEmpty == false) ? env! : "/tmp"
        var template = Array("\(dir)/fwassemble-batch-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw FWError(.io, "cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))")
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return fd
    }

    static func tail(of fd: Int32) -> String {
        let end = lseek(fd, 0, SEEK_END)
        guard end > 0 else { return "" }
        let count = Int(min(end, 64 << 10))
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, end - off_t(count)) }
        return String(decoding: bytes.prefix(max(n, 0)), as: UTF8.self)
    }
}

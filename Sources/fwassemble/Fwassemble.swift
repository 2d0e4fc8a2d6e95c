import ArgumentParser
import FirmwareAssembler
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `fwassemble`: the root command. Each subcommand lives in its own file as `Fwassemble.Name`
/// and is listed once in `subcommands` below.
@main
struct Fwassemble: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "fwassemble",
        abstract: "Turn a raw multi-partition firmware disk image into one faithful rootfs tar.gz.",
        version: version,
        subcommands: [
            Inspect.self,
            Extract.self,
            PlanCommand.self,
            Assemble.self,
            Docker.self,
            Batch.self,
            Ls.self,
            Cat.self,
            Stat.self,
            Find.self,
            Diff.self,
        ]
    )

    /// Exit codes: 0 success, 1 an error reading or writing (one `fwassemble: ...` line on
    /// stderr), 2 a usage error (ArgumentParser's message and usage on stderr).
    static func main() {
        installSignalHandlers()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            // ArgumentParser's own outcomes: --help and --version (exit 0), usage errors (exit 2);
            // anything else is a failure of the work itself (exit 1).
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            guard code == .validationFailure else { fail(error) }
            let message = fullMessage(for: error)
            writeError(message.hasSuffix("\n") ? message : message + "\n")
            Glibc.exit(2)
        }
    }

    /// Prints `fwassemble: <message>` on stderr and exits 1; a job stopped by a signal (its
    /// output already removed) ends by that signal, as an uncaught one would.
    static func fail(_ error: any Error) -> Never {
        writeError("fwassemble: \(error)\n")
        if (error as? FWError)?.code == .cancelled, let signal = Cancellation.process.signalNumber {
            Glibc.signal(signal, SIG_DFL)
            raise(signal)
        }
        Glibc.exit(1)
    }

    /// SIGINT, SIGTERM and SIGHUP stop the running job through `Cancellation.process` (an atomic
    /// store, async-signal-safe): its output stage removes what it began and `fail` ends the
    /// process by the signal. A second signal ends it at once.
    static func installSignalHandlers() {
        // A parent may have started us with these blocked (a child spawned from a libdispatch
        // or Python worker thread inherits that thread's mask): unblock them, or a stop request
        // would stay pending for ever.
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, s) }
        sigprocmask(SIG_UNBLOCK, &set, nil)
        for s in [SIGINT, SIGTERM, SIGHUP] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                Cancellation.process.signal(signal)
                Glibc.signal(signal, SIG_DFL)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(s, &action, nil)
        }
    }

    /// Writes to standard error (fd 2, unbuffered).
    static func writeError(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes = bytes.dropFirst(n)
        }
    }
}

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
        ]
    )

    /// Exit codes: 0 success, 1 an error reading or writing (one `fwassemble: ...` line on
    /// stderr), 2 a usage error (ArgumentParser's message and usage on stderr).
    static func main() {
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

    /// Prints `fwassemble: <message>` on stderr and exits 1.
    static func fail(_ error: any Error) -> Never {
        writeError("fwassemble: \(error)\n")
        Glibc.exit(1)
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

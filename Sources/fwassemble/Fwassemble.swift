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
        ]
    )

    /// Exit codes: 0 success, 1 an error reading or writing (one `fwassemble: ...` line on
    /// stderr), 2 a usage error (ArgumentParser's message and usage on stderr).
    static func main() {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }   // --help, --version
            let message = fullMessage(for: error)
            writeError(message.hasSuffix("\n") ? message : message + "\n")
            Glibc.exit(2)
        }
        do {
            var command = command
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            fail(error)
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

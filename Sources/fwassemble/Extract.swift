import ArgumentParser
import FirmwareAssembler
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Fwassemble {
    struct Extract: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write one partition's filesystem as a tar archive (gzip by default).",
            discussion: """
                Every field is kept: type, mode with setuid/setgid/sticky, numeric owners, mtime \
                with nanoseconds, symlink targets, devices, FIFOs, xattrs and hardlinks. Sockets \
                cannot be stored in tar and are skipped with a warning. Warnings go to stderr and \
                the exit status stays 0; errors exit 1 and leave no output file behind.
                """)

        @Argument(help: "The raw disk image, or a bare filesystem image (its partition 1).")
        var image: String

        @OptionGroup var imageOptions: ImageOptions

        @Option(name: [.short, .long], help: "Partition number, GPT partition name or filesystem label.")
        var partition: String

        @Option(name: [.short, .customLong("output")], help: "Output archive path, or - for stdout.")
        var output: String

        @Option(help: "none, gzip or zstd (default: from the output name: .tar none, .zst zstd, else gzip).")
        var compression: String?

        @Option(help: "Compression level (gzip 1-9, default 6; zstd 1-19, default 3).")
        var level: Int?

        @Option(help: "Compression threads (default: the number of cores).")
        var threads: Int?

        @Flag(name: [.short, .long], help: "Print warnings only, no summary.")
        var quiet = false

        func validate() throws {
            do {
                _ = try chosenCompression()
            } catch {
                throw ValidationError("\(error)")
            }
            if output == "-", isatty(1) != 0 {
                throw ValidationError("refusing to write an archive to a terminal; redirect standard output or use -o FILE")
            }
            if let threads, threads < 1 || threads > 256 {
                throw ValidationError("--threads must be between 1 and 256")
            }
        }

        private func chosenCompression() throws -> Compression {
            let name = compression ?? {
                if output.hasSuffix(".tar") { return "none" }
                if output.hasSuffix(".zst") || output.hasSuffix(".tzst") { return "zstd" }
                return "gzip"
            }()
            return try Compression(name: name, level: level)
        }

        func run() throws {
            var options = ExtractOptions(output: output, compression: try chosenCompression())
            if let threads { options.threads = threads }
            let result: ExtractResult
            do {
                result = try imageOptions.disk(image).extract(partition: partition, options: options)
            } catch {
                Fwassemble.fail(error)
            }
            for problem in result.problems {
                Fwassemble.writeError("fwassemble: warning: \(result.partition): \(problem)\n")
            }
            if !quiet {
                let target = output == "-" ? "standard output" : output
                Fwassemble.writeError("""
                    \(result.partition) (\(result.format)): \(result.members) entries, \(result.files) files, \
                    \(result.hardlinks) hardlinks, \(result.contentBytes) bytes of content -> \(target) \
                    (\(options.compression)); \(result.problems.count) warning\(result.problems.count == 1 ? "" : "s")

                    """)
            }
        }
    }
}

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

        @OptionGroup var archive: CompressionOptions

        @OptionGroup var replay: ReplayOption

        @Flag(name: [.short, .long], help: "Print warnings only, no summary.")
        var quiet = false

        @Flag(help: "Exit 1 at the first warning, leaving no output.")
        var strict = false

        var request: ExtractRequest {
            var r = ExtractRequest(partition: partition, output: archive.request(output: output))
            r.source = imageOptions.source(image, noReplay: replay.noReplay)
            r.strict = strict
            return r
        }

        func validate() throws {
            try validateRequest(output: output) { _ = try request.validate() }
        }

        func run() throws {
            let request = self.request
            let hooks = JobHooks(journalProgress: ReplayOption.progressLine(enabled: !quiet && isatty(2) != 0))
            let result: ExtractResult
            let compression: Compression
            do {
                compression = try request.validate().compression
                result = try ImageOptions.open(request.source).extract(request, hooks: hooks)
            } catch {
                Fwassemble.fail(error)
            }
            // The archive's problems, then the journal replay's warnings (ext3/ext4, UBIFS).
            for warning in result.warnings {
                Fwassemble.writeError("warning: \(result.partition): \(warning)\n")
            }
            if let journal = result.journal {
                if !quiet {
                    Fwassemble.writeError(journal.replayed
                        ? "\(result.partition): needs recovery: journal replayed (\(journal.transactions) transactions, \(journal.blocks) blocks, \(journal.revoked) revoked, \(journal.orphans) orphans)\n"
                        : "\(result.partition): needs recovery: journal not replayed\n")
                }
            }
            if !quiet {
                let warnings = result.warnings.count
                let target = output == "-" ? "standard output" : output
                Fwassemble.writeError("""
                    \(result.partition) (\(result.format)): \(result.members) entries, \(result.files) files, \
                    \(result.hardlinks) hardlinks, \(result.contentBytes) bytes of content -> \(target) \
                    (\(compression)); \(warnings) warning\(warnings == 1 ? "" : "s")

                    """)
            }
        }
    }
}

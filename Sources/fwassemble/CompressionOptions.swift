import ArgumentParser
import FirmwareAssembler
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension CompressionFormat: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}

/// How an archive is written, shared by every command that writes one (extract, assemble,
/// docker --export): the format parsed once by ArgumentParser, its level and the threads.
struct CompressionOptions: ParsableArguments {
    @Option(help: "none, gzip or zstd (default gzip; extract: from the output name, .tar none, .zst zstd).")
    var compression: CompressionFormat?

    @Option(help: "Compression level (gzip 1-12, default 6; zstd 1-19, default 3).")
    var level: Int?

    @Option(help: "Compression threads (default: the number of cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 || threads > 256 {
            throw ValidationError("--threads must be between 1 and 256")
        }
    }

    /// The compression asked for, `format` when none was given; the level is checked here.
    func compression(default format: CompressionFormat) throws -> Compression {
        try Compression(compression ?? format, level: level)
    }

    /// Checks the level against the format in use and refuses to write an archive to a terminal.
    func validate(output: String?, default format: CompressionFormat) throws {
        do {
            _ = try compression(default: format)
        } catch {
            throw ValidationError("\(error)")
        }
        if output == "-", isatty(1) != 0 {
            throw ValidationError("refusing to write an archive to a terminal; redirect standard output or use -o FILE")
        }
    }
}

extension HardlinkMode: ExpressibleByArgument {}

extension AssembleFormat: ExpressibleByArgument {}

/// What the assembled tree holds and how it is read, shared by `assemble` and `batch` (which
/// passes it on to each disk's `assemble`).
struct TreeOptions: ParsableArguments {
    @Flag(help: "Leave device nodes out and list them in the report.")
    var noDevices = false

    @Flag(help: "Also mask the folded .mount units and comment out the folded fstab lines, so the rehosted system does not try to mount partitions that are not there.")
    var rehost = false

    @Option(help: "How a file met again at another path is written: link (a tar link member, the default) or copy (a full regular file, as fw2tar writes it; a file met again through a bind mount stays a link).")
    var hardlinks: HardlinkMode = .link

    @OptionGroup var replay: ReplayOption

    /// These options on an `assemble` command line.
    var arguments: [String] {
        var args: [String] = []
        if noDevices { args.append("--no-devices") }
        if rehost { args.append("--rehost") }
        if hardlinks != .link { args += ["--hardlinks", hardlinks.rawValue] }
        if replay.noReplay { args.append("--no-replay") }
        return args
    }
}

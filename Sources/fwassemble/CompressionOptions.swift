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
/// docker --export): the format parsed once by ArgumentParser, its level and the threads. Only
/// the request's `OutputRequest` checks them (`validate`), so the rules are written once.
struct CompressionOptions: ParsableArguments {
    @Option(help: "none, gzip or zstd (default: from the output name, .tar none, .tar.zst zstd, else gzip).")
    var compression: CompressionFormat?

    @Option(help: "Compression level (gzip 1-12, default 6; zstd 1-19, default 3).")
    var level: Int?

    @Option(help: "Compression threads, 1-256 (default: the number of cores).")
    var threads: Int?

    /// These options with `output` and `report`, as the request's output group.
    func request(output: String?, report: String? = nil, format: AssembleFormat? = nil) -> OutputRequest {
        OutputRequest(format: format, compression: compression, level: level, threads: threads, output: output, report: report)
    }
}

/// Runs a request's `validate` as ArgumentParser's validation: a usage error (exit 2), and no
/// archive to a terminal.
func validateRequest(output: String?, _ check: () throws -> Void) throws {
    do {
        try check()
    } catch let e as FWError {
        throw ValidationError(e.message)
    }
    if output == "-", isatty(1) != 0 {
        throw ValidationError("refusing to write an archive to a terminal; redirect standard output or use -o FILE")
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

    /// These options set on `request`.
    func apply(to request: inout AssembleRequest) {
        request.noDevices = noDevices
        request.rehost = rehost
        request.hardlinks = hardlinks
        request.source.noReplay = replay.noReplay
    }
}

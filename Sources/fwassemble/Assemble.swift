import ArgumentParser
import FirmwareAssembler
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Fwassemble {
    struct Assemble: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the booted device's filesystem as one rootfs tar.gz (the main job).",
            discussion: """
                The root filesystem with every planned mount applied (partitions, binds, \
                overlays), streamed from the disk into one archive: ./-prefixed names, numeric \
                owners, every mode bit, xattrs as SCHILY.xattr records, hardlinks (also across \
                bind mounts) as link entries, device nodes kept. A JSON report is written beside \
                the output. Exit status: 0 success, 1 error, 2 usage; warnings fail only with --strict.
                """)

        @Argument(help: "The raw disk image (optional with --request, whose \"disk\" names it).")
        var image: String?

        @OptionGroup var imageOptions: ImageOptions

        @Option(name: [.short, .customLong("output")], help: "Output path, or - for stdout (default: IMAGE's name without its disk suffixes + .rootfs.tar.gz, .rootfs.tar.zst, .rootfs.tar, .ext4 or .qcow2, in the current directory). Its suffix chooses the compression or format when no option does.")
        var output: String?

        @Option(help: "Where to write the JSON report (default: OUTPUT.report.json).")
        var report: String?

        @OptionGroup var archive: CompressionOptions

        @OptionGroup var rootOption: RootOption

        @OptionGroup var tree: TreeOptions

        @Option(help: "tar (the rootfs archive, default), ext4 (an ext4 filesystem image) or qcow2 (that image through qemu-img); default: from -o's suffix.")
        var format: AssembleFormat?

        @Option(help: ArgumentHelp("ext4/qcow2: free space added to the content (default 4096, penguin's padding; at most 16 TiB).", valueName: "MiB"))
        var padding: UInt64?

        @Option(help: "ext4/qcow2: inode count (default: penguin's formula, one per 8 KiB + 1000).")
        var inodes: UInt32?

        @Option(help: "ext4/qcow2: the filesystem UUID (default: derived from the disk).")
        var uuid: String?

        @Option(name: .customLong("add-tar"), help: "ext4/qcow2: a tar (plain, .gz or .zst) whose members are written on top (repeatable), as penguin appends its igloo files.")
        var addTar: [String] = []

        @Flag(help: "Exit 1 at the first warning, leaving no output.")
        var strict = false

        @Option(help: ArgumentHelp("Read every option from a JSON request (docs/library.md), - for standard input; no other option may be given.", valueName: "file"))
        var request: String?

        @Flag(name: [.short, .long], help: "No progress and no summary.")
        var quiet = false

        @Flag(name: [.short, .long], help: "Log each mount as it is applied.")
        var verbose = false

        /// The request these options make.
        var optionsRequest: AssembleRequest {
            var r = AssembleRequest()
            r.source = imageOptions.source(image)
            r.root = rootOption.root
            tree.apply(to: &r)
            r.addTar = addTar
            r.output = archive.request(output: output, report: report, format: format)
            r.padding = padding
            r.inodes = inodes
            r.uuid = uuid
            r.strict = strict
            return r
        }

        /// The request: from --request, or from the options.
        func makeRequest() throws -> AssembleRequest {
            guard let request else { return optionsRequest }
            var empty = AssembleRequest()
            empty.source.disk = image
            guard optionsRequest == empty else { throw ValidationError("--request takes every option from its JSON; give no other option") }
            let bytes: [UInt8]
            if request == "-" {
                bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
            } else {
                guard let data = FileManager.default.contents(atPath: request) else { throw ValidationError("cannot read --request \(request)") }
                bytes = Array(data)
            }
            var decoded: AssembleRequest
            do { decoded = try AssembleRequest.decode(bytes) } catch let e as FWError { throw ValidationError(e.message) }
            if let image { decoded.source.disk = image }
            return decoded
        }

        func validate() throws {
            guard request == nil else { return }  // read in run(): standard input can be read once
            guard image != nil else { throw ValidationError("Missing expected argument '<image>'") }
            try validateRequest(output: output) { _ = try optionsRequest.validate() }
        }

        func run() throws {
            let request = try makeRequest()
            try validateRequest(output: request.output.output) {
                guard request.source.disk != nil else { throw FWError(.invalidArgument, "the request names no disk") }
                _ = try request.validate()
            }
            let showProgress = !quiet && isatty(2) != 0
            var hooks = JobHooks(journalProgress: ReplayOption.progressLine(enabled: showProgress))
            if showProgress { hooks.progress = ProgressBar.assemble() }
            let result: AssembleReport
            do {
                let disk = try ImageOptions.open(request.source)
                if verbose {
                    let plan = try disk.plan(options: PlanOptions(root: request.root, replayJournal: !request.source.noReplay))
                    for m in plan.mounts {
                        Fwassemble.writeError("mount \(m.where): \(m.kind.rawValue) \(m.partition.map { "partition \($0)" } ?? m.what ?? "") (\(m.declaredBy))\n")
                    }
                }
                result = try disk.assemble(request, hooks: hooks)
            } catch {
                if showProgress { Fwassemble.writeError("\n") }
                Fwassemble.fail(error)
            }
            if showProgress { Fwassemble.writeError("\r" + String(repeating: " ", count: 100) + "\r") }
            for w in result.warnings { Fwassemble.writeError("warning: \(w)\n") }
            for e in result.readErrors { Fwassemble.writeError("read error: \(e)\n") }
            for c in result.rehost ?? [] where verbose || quiet == false { Fwassemble.writeError("rehost: \(c)\n") }
            for s in result.skippedSockets { Fwassemble.writeError("note: socket \(s) skipped (tar cannot store sockets)\n") }
            if !quiet {
                Fwassemble.writeError("""
                    wrote \(result.output): \(result.members) entries (\(result.files) files, \(result.hardlinks) hardlinks), \
                    \(human(result.contentBytes)) of content, root partition \(result.plan.root.partition) \
                    (\(result.plan.root.reason)), \(result.plan.mounts.count) mounts applied, \(result.plan.skipped.count) skipped, \
                    \(result.warnings.count) warnings\(result.copiedHardlinks.map { ", \($0) hardlinks copied (\(human(result.copiedBytes ?? 0)) more content)" } ?? "")

                    """)
            }
        }
    }
}

/// The progress line of a long job on a terminal.
enum ProgressBar {
    static func assemble() -> @Sendable (AssembleProgress) -> Void {
        let start = Date()
        return { p in
            let elapsed = max(Date().timeIntervalSince(start), 0.001)
            let rate = Double(p.contentBytes) / elapsed
            let fraction = p.plannedBytes > 0 ? min(1, Double(p.contentBytes) / Double(p.plannedBytes)) : 0
            let width = 24
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let eta = rate > 0 && p.plannedBytes > p.contentBytes ? Double(p.plannedBytes - p.contentBytes) / rate : 0
            Fwassemble.writeError(String(format: "\r[%@] %@ of at most %@, %d entries, %@/s, ETA %ds   ",
                                         bar, human(p.contentBytes), human(p.plannedBytes), p.entries, human(UInt64(rate)), Int(eta)))
        }
    }
}

/// "1.5 GiB" style sizes.
func human(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

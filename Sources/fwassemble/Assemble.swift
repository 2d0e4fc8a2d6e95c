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

        @Argument(help: "The raw disk image.")
        var image: String

        @OptionGroup var imageOptions: ImageOptions

        @Option(name: [.short, .customLong("output")], help: "Output path, or - for stdout (default: NAME.rootfs.tar.gz in the current directory).")
        var output: String?

        @Option(help: "Where to write the JSON report (default: OUTPUT.report.json).")
        var report: String?

        @OptionGroup var archive: CompressionOptions

        @OptionGroup var rootOption: RootOption

        @OptionGroup var tree: TreeOptions

        @Option(help: "tar (the rootfs archive, default) or ext4 (an ext4 filesystem image; -o NAME.ext4, or NAME.qcow2 through qemu-img).")
        var format: AssembleFormat = .tar

        @Option(help: "ext4: free space added to the content, in MiB (default 4096, penguin's padding).")
        var padding: UInt64 = 4096

        @Option(help: "ext4: inode count (default: penguin's formula, one per 8 KiB + 1000).")
        var inodes: UInt32?

        @Option(help: "ext4: the filesystem UUID (default: derived from the disk).")
        var uuid: String?

        @Option(name: .customLong("add-tar"), help: "ext4: an uncompressed tar whose members are written on top (repeatable), as penguin appends its igloo files.")
        var addTar: [String] = []

        @Flag(name: [.short, .long], help: "No progress and no summary.")
        var quiet = false

        @Flag(name: [.short, .long], help: "Log each mount as it is applied.")
        var verbose = false

        @Flag(help: "Exit 1 when there are warnings.")
        var strict = false

        func validate() throws {
            if format == .ext4 {
                guard let output, output != "-" else { throw ValidationError("--format ext4 needs -o NAME.ext4 or NAME.qcow2") }
                if uuid != nil, UUID(uuidString: uuid!) == nil { throw ValidationError("--uuid \(uuid!) is not a UUID") }
                if tree.hardlinks == .copy { throw ValidationError("--hardlinks copy applies to the archive; an ext4 image keeps hardlinks as shared inodes") }
                return
            }
            if !addTar.isEmpty || inodes != nil || uuid != nil { throw ValidationError("--add-tar, --inodes and --uuid need --format ext4") }
            try archive.validate(output: output, default: .gzip)
        }

        func run() throws {
            let showProgress = !quiet && isatty(2) != 0
            var plan = rootOption.planOptions
            plan.replayJournal = tree.replay.replayJournal
            var options = AssembleOptions(output: output, reportPath: report, compression: try archive.compression(default: .gzip),
                                          noDevices: tree.noDevices, plan: plan)
            if let threads = archive.threads { options.threads = threads }
            options.rehost = tree.rehost
            options.hardlinks = tree.hardlinks
            options.format = format
            options.ext4.padding = padding << 20
            options.ext4.inodes = inodes
            options.ext4.uuid = uuid.flatMap(UUID.init(uuidString:))
            options.ext4.addTars = addTar
            options.journalProgress = ReplayOption.progressLine(enabled: showProgress)
            if showProgress {
                let start = Date()
                options.progress = { p in
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
            let result: AssembleReport
            do {
                let disk = try imageOptions.disk(image)
                if verbose {
                    let plan = try disk.plan(options: options.plan)
                    for m in plan.mounts {
                        Fwassemble.writeError("mount \(m.where): \(m.kind.rawValue) \(m.partition.map { "partition \($0)" } ?? m.what ?? "") (\(m.declaredBy))\n")
                    }
                }
                result = try disk.assemble(options: options)
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
            if strict, !result.warnings.isEmpty || !result.readErrors.isEmpty {
                throw ExitCode.failure
            }
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

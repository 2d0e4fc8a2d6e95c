import ArgumentParser
import FirmwareAssembler
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Fwassemble {
    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare two disks' booted namespaces (or one partition of each) entry by entry, and their Docker inventories.",
            discussion: """
                Both trees are walked in the archive's order and merged, so memory stays small. Each \
                difference is one line (added, removed, or changed with the fields that changed: type, \
                mode, uid, gid, size, mtime, link, device, xattrs, hardlink, content by SHA-256), then \
                the Docker images and containers added, removed or changed. Both disks are read with \
                the same options. Exit status, as diff(1): 0 identical, 1 different, 2 trouble \
                (an error, or entries that could not be read). docs/browse.md.
                """)

        @OptionGroup var tree: LookOptions

        @Argument(help: "The second disk image.")
        var imageB: String

        @Argument(help: "Compare below this path only (default /; the Docker inventories are compared only for /).")
        var path: String = "/"

        @Flag(help: "One JSON object per line: path, change, fields (and docker, name for the inventories).")
        var json = false

        @Flag(help: "Do not compare the contents of files whose size is the same (metadata only).")
        var noContent = false

        var request: DiffRequest {
            DiffRequest(tree: tree.request, other: imageB, path: path, noContent: noContent)
        }

        func run() throws {
            let summary: DiffSummary
            do {
                summary = try FirmwareAssembler.Disk.diff(request) { change in
                    print(json ? try change.json() : change.text)
                }
            } catch {
                Fwassemble.writeError("fwassemble: \(error)\n")
                throw ExitCode(2)
            }
            Out.warnings(summary.warnings + summary.problems)
            if !summary.problems.isEmpty { throw ExitCode(2) }
            if summary.differences > 0 { throw ExitCode(1) }
        }
    }
}

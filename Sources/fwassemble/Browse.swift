import ArgumentParser
import FirmwareAssembler
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What `ls`, `cat`, `stat`, `find` look at: the disk as `plan` boots it (`BootedDisk`:
/// IMAGE, --backing-dir, --snapshot, --root), `--no-replay`, or one filesystem (`--partition`).
struct LookOptions: ParsableArguments {
    @OptionGroup var booted: BootedDisk

    @OptionGroup var replay: ReplayOption

    @Option(name: [.short, .long], help: "Look at this partition's filesystem (number, GPT partition name or filesystem label) instead of the booted namespace.")
    var partition: String?

    var request: BrowseRequest {
        BrowseRequest(source: booted.imageOptions.source(booted.image, noReplay: replay.noReplay),
                      root: booted.rootOption.root, partition: partition)
    }

    func validate() throws {
        try validateRequest(output: nil) { try request.validate() }
    }

    /// Opens the tree; an error ends the process (exit 1).
    func open() -> DeviceTree {
        do {
            return try ImageOptions.open(request.source).tree(request)
        } catch {
            Fwassemble.fail(error)
        }
    }

    /// Opens the tree, hands it to `body`, then prints the tree's warnings; an error of `body`
    /// ends the process (exit 1) after the warnings gathered so far.
    func browse(_ body: (DeviceTree) throws -> Void) {
        let tree = open()
        do {
            try body(tree)
        } catch {
            Out.warnings(tree.warnings)
            Fwassemble.fail(error)
        }
        Out.warnings(tree.warnings)
    }
}

/// Standard output for the browsing commands, through stdio's buffer.
enum Out {
    static func line(_ text: String) {
        print(text)
    }

    /// Writes bytes to fd 1 (after what `line` buffered); a write error ends the process.
    static func bytes(_ buffer: UnsafeRawBufferPointer) {
        var done = 0
        while done < buffer.count, let base = buffer.baseAddress {
            let n = write(1, base + done, buffer.count - done)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { Fwassemble.fail(FWError(.io, "writing to standard output: \(String(cString: strerror(errno)))")) }
            done += n
        }
    }

    /// Each warning as `warning: ...` on stderr.
    static func warnings(_ warnings: [RunWarning]) {
        for w in warnings { Fwassemble.writeError("warning: \(w.text)\n") }
    }

    /// An `ls -l` line: mode, links, owners, size (or device numbers), mtime (UTC), name, target.
    static func long(_ entry: AssembledEntry, name: String) -> String {
        let m = entry.metadata
        let size = m.device.map { "\($0.major), \($0.minor)" } ?? "\(m.size)"
        var t = time_t(m.mtime.seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        let date = String(format: "%04d-%02d-%02d %02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                          Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min))
        let target = m.symlinkTarget.map { " -> " + String(decoding: $0, as: UTF8.self) } ?? ""
        return "\(m.modeString) \(m.linkCount) \(m.uid) \(m.gid) \(size) \(date) \(name)\(target)"
    }
}

extension Fwassemble {
    struct Ls: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a directory of the booted namespace (or of one partition) without writing an archive.",
            discussion: "A symlink to a directory is followed inside the namespace; a file lists itself. docs/browse.md.")

        @OptionGroup var tree: LookOptions

        @Argument(help: "The directory (default /).")
        var path: String = "/"

        @Flag(name: .short, help: "Long form: type and mode, links, uid, gid, size (or device numbers), mtime (UTC), symlink target.")
        var long = false

        @Flag(help: "One JSON object per line: name, type, mode, uid, gid, size, mtime, mtime_ns, link, device.")
        var json = false

        func run() throws {
            self.tree.browse { tree in
                for entry in try tree.list(path) {
                    if json {
                        Out.line(try EntryLine(entry, byPath: false).json())
                    } else {
                        Out.line(long ? Out.long(entry, name: entry.name) : entry.name)
                    }
                }
            }
        }
    }

    struct Cat: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the bytes of files of the booted namespace (or of one partition) to standard output.",
            discussion: "Symlinks are followed inside the namespace, never outside it. docs/browse.md.")

        @OptionGroup var tree: LookOptions

        @Argument(help: "The files.")
        var paths: [String]

        func validate() throws {
            if paths.isEmpty { throw ValidationError("cat needs at least one PATH") }
        }

        /// Each file in turn, as cat(1): a path that cannot be read is reported and the others
        /// are still written; exit 1 when any failed.
        func run() throws {
            let tree = self.tree.open()
            var failed = false
            for path in paths {
                do {
                    let file = try tree.contents(of: path)
                    try file.forEachChunk { Out.bytes($0) }
                    // Read problems that did not stop the read (a btrfs data checksum mismatch).
                    for w in file.warnings { Fwassemble.writeError("warning: \(path): \(w)\n") }
                } catch {
                    Fwassemble.writeError("fwassemble: \(error)\n")
                    failed = true
                }
            }
            Out.warnings(tree.warnings)
            if failed { throw ExitCode.failure }
        }
    }

    struct Stat: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show every field of one entry and the mount, filesystem and overlay layer it comes from.",
            discussion: "The last symlink is not followed (-L follows it). docs/browse.md.")

        @OptionGroup var tree: LookOptions

        @Argument(help: "The entry.")
        var path: String

        @Flag(name: [.customShort("L"), .long], help: "Follow a symlink at PATH.")
        var dereference = false

        @Flag(help: "Print the fields as one JSON document.")
        var json = false

        func run() throws {
            self.tree.browse { tree in
                let status = try tree.stat(path, followSymlinks: dereference)
                Out.line(json ? try status.json() : Self.text(status))
            }
        }

        static func text(_ s: EntryStatus) -> String {
            let m = s.metadata
            var lines = ["  Path: \(s.path)" + (s.resolved == s.path ? "" : " (at \(s.resolved))")]
            lines.append("  Type: \(m.type.rawValue)  Mode: \(String(m.permissions & 0o7777, radix: 8)) (\(m.modeString))  Uid: \(m.uid)  Gid: \(m.gid)")
            lines.append("  Size: \(m.size)  Links: \(m.linkCount)  Inode: \(m.inode)")
            if let d = m.device { lines.append("Device: \(d.major), \(d.minor)") }
            if let t = m.symlinkTarget { lines.append("  Link: \(String(decoding: t, as: UTF8.self))") }
            lines.append("Modify: \(m.mtime)")
            if let a = m.atime { lines.append("Access: \(a)") }
            if let c = m.ctime { lines.append("Change: \(c)") }
            for x in m.xattrs { lines.append(" Xattr: \(x.name) = \(x.value.map { String(format: "%02x", $0) }.joined())") }
            let src = s.source
            var from = "mount \(src.mount) at \(src.mountPoint) (\(src.origin))"
            if let fs = src.filesystem { from += ", \(src.format ?? "") filesystem \(fs), inode \(src.inode ?? 0)" }
            if let layer = src.layer, let layers = src.layers { from += ", overlay layer \(layer) of \(layers) (0 = upper)" }
            lines.append("Source: \(from)")
            return lines.joined(separator: "\n")
        }
    }

    struct Find: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Walk the booted namespace (or one partition) from PATH, one line per entry, streaming.",
            discussion: "Entries come in the archive's order (depth first, names sorted bytewise); each line is ls -l's fields and the path. docs/browse.md.")

        @OptionGroup var tree: LookOptions

        @Argument(help: "Where to start (default /).")
        var path: String = "/"

        @Option(help: "Only entries whose name matches this shell pattern (fnmatch).")
        var name: String?

        @Option(help: "Only entries of this type: f d l c b p s.")
        var type: String?

        @Flag(help: "One JSON object per line: path, type, mode, uid, gid, size, mtime, mtime_ns, link, device, hardlink.")
        var json = false

        func validate() throws {
            if let type, type.count != 1 || !"fdlcbps".contains(type) {
                throw ValidationError("--type must be one of f d l c b p s")
            }
        }

        func run() throws {
            let tree = self.tree.open()
            var walk: DeviceTree.Walk
            do { walk = try tree.walk(path) } catch { Fwassemble.fail(error) }
            while let entry = walk.next() {
                if let type, entry.metadata.typeLetter != type.first { continue }
                if let name, fnmatch(name, entry.name, 0) != 0 { continue }
                do {
                    Out.line(json ? try EntryLine(entry, byPath: true).json() : Out.long(entry, name: entry.path))
                } catch {
                    Fwassemble.fail(error)
                }
            }
            Out.warnings(tree.warnings + walk.problems)
        }
    }
}

import Assembly
import DiskImage
import FileSystems

/// One change `--rehost` made to the archived tree.
public struct RehostChange: Sendable, Codable, Equatable, CustomStringConvertible {
    public var path: String
    public var change: String

    public var description: String { "\(path): \(change)" }
}

/// `--rehost`: besides the faithful tree, neutralise the mounts that were folded into the
/// archive, so a rehosted system does not try to mount partitions that are not there: each
/// folded `.mount` unit is masked (a `/etc/systemd/system/<unit>` symlink to /dev/null) and each
/// folded `/etc/fstab` line is commented out. Works on the sorted walk, inserting and replacing
/// entries in place, so the output stays in walk order.
public struct RehostWalk: Sequence, EntryWalk {
    private var base: TreeWalk
    private var peeked: WalkEntry?
    private var exhausted = false
    /// Unit names to mask, as sorted paths below the root.
    private var masks: [NamespacePath]
    private let fstabLines: Set<Int>
    private let generated = MemoryFileSystem(formatName: "rehost", sourceName: "fwassemble --rehost")
    private var unitDirectory: Metadata?
    /// What was changed (and what could not be).
    public private(set) var changes: [RehostChange] = []
    /// The problems of the walk below.
    public var problems: [WalkProblem] { base.problems }

    static let unitDirectory = NamespacePath("/etc/systemd/system")

    public init(_ walk: TreeWalk, plan: Plan) {
        base = walk
        var names = Set<String>()
        var lines = Set<Int>()
        for m in plan.mounts.dropFirst() {
            switch m.source {
            case .fstab("/etc/fstab", let line): lines.insert(line)
            case .unit: if let name = m.source.unitName, name.hasSuffix(".mount") { names.insert(name) }
            case .fstab, .other: break
            }
        }
        masks = names.sorted().map { Self.unitDirectory.child(Array($0.utf8)) }
        fstabLines = lines
    }

    public mutating func next() -> WalkEntry? {
        let upcoming = peek()
        // Masks that sort before the next entry are inserted now (their directory came already).
        if let mask = masks.first, upcoming.map({ mask < NamespacePath(bytes: $0.path) }) ?? true {
            masks.removeFirst()
            if let dir = unitDirectory {
                return maskEntry(mask, directory: dir)
            }
            changes.append(RehostChange(path: mask.display, change: "not masked: /etc/systemd/system does not exist"))
            return next()
        }
        guard var entry = take() else { return nil }
        let path = NamespacePath(bytes: entry.path)
        if path == Self.unitDirectory, entry.metadata.type == .directory { unitDirectory = entry.metadata }
        if let mask = masks.first, mask == path {
            // A unit file in /etc itself: replaced by the mask.
            masks.removeFirst()
            if let dir = unitDirectory {
                skipChildren(of: path, ifDirectory: entry.metadata.type == .directory)
                return maskEntry(mask, directory: dir)
            }
        }
        if path == NamespacePath("/etc/fstab"), !fstabLines.isEmpty, entry.metadata.type == .regular {
            do {
                let original = try entry.reader.readSmallFile(entry.metadata.inode, limit: 1 << 20)
                var lines: [[UInt8]] = []
                for (i, line) in original.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
                    if fstabLines.contains(i + 1) {
                        lines.append(Array("# fwassemble --rehost: folded into the archive: ".utf8) + line)
                        changes.append(RehostChange(path: "/etc/fstab", change: "line \(i + 1) commented out"))
                    } else {
                        lines.append(Array(line))
                    }
                }
                let out = Array(lines.joined(separator: [0x0A]))
                let inode = generated.addFile("/fstab-\(changes.count)", out, permissions: entry.metadata.permissions)
                var meta = entry.metadata
                meta.size = UInt64(out.count)
                meta.inode = inode
                meta.linkCount = 1
                entry = WalkEntry(path: entry.path, metadata: meta, hardlinkTarget: nil, reader: generated)
            } catch {
                changes.append(RehostChange(path: "/etc/fstab", change: "left as is: \(FWError(error).message)"))
            }
        }
        return entry
    }

    private mutating func maskEntry(_ path: NamespacePath, directory: Metadata) -> WalkEntry {
        let inode = generated.addSymlink("/mask-\(changes.count)", target: "/dev/null")
        var meta = generated.storedMetadata(of: inode) ?? directory
        meta.mtime = directory.mtime
        changes.append(RehostChange(path: path.display, change: "masked (symlink to /dev/null)"))
        return WalkEntry(path: path.relativeBytes, metadata: meta, hardlinkTarget: nil, reader: generated)
    }

    private mutating func skipChildren(of path: NamespacePath, ifDirectory: Bool) {
        guard ifDirectory else { return }
        while let next = peek(), case let p = NamespacePath(bytes: next.path), p.isWithin(path), p != path { _ = take() }
    }

    private mutating func peek() -> WalkEntry? {
        if peeked == nil, !exhausted {
            peeked = base.next()
            if peeked == nil { exhausted = true }
        }
        return peeked
    }

    private mutating func take() -> WalkEntry? {
        let e = peek()
        peeked = nil
        return e
    }
}

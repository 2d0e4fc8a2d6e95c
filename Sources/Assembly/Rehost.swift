import DiskImage
import FileSystems
import MountPlan

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
public struct RehostWalk: Sequence, IteratorProtocol {
    private var base: NamespaceWalk
    private var peeked: NamespaceEntry?
    private var exhausted = false
    /// Unit names to mask, as sorted paths below the root.
    private var masks: [[[UInt8]]]
    private let fstabLines: Set<Int>
    private let generated = MemoryFileSystem(formatName: "rehost", sourceName: "fwassemble --rehost")
    private var unitDirectory: Metadata?
    /// What was changed (and what could not be).
    public private(set) var changes: [RehostChange] = []

    static let unitDirectory: [[UInt8]] = ["etc", "systemd", "system"].map { Array($0.utf8) }

    public init(_ walk: NamespaceWalk, plan: Plan) {
        base = walk
        var names = Set<String>()
        var lines = Set<Int>()
        for m in plan.mounts.dropFirst() {
            if m.declaredBy.hasPrefix("/etc/fstab:"), let n = Int(m.declaredBy.dropFirst("/etc/fstab:".count)) {
                lines.insert(n)
            } else if let name = m.declaredBy.split(separator: "/").last, name.hasSuffix(".mount") {
                names.insert(String(name))
            }
        }
        masks = names.sorted().map { Self.unitDirectory + [Array($0.utf8)] }
        fstabLines = lines
    }

    public mutating func next() -> NamespaceEntry? {
        let upcoming = peek()
        // Masks that sort before the next entry are inserted now (their directory came already).
        if let mask = masks.first, upcoming.map({ Self.precedes(mask, Self.components($0.path)) }) ?? true {
            masks.removeFirst()
            if let dir = unitDirectory {
                return maskEntry(mask, directory: dir)
            }
            changes.append(RehostChange(path: Self.display(mask), change: "not masked: /etc/systemd/system does not exist"))
            return next()
        }
        guard var entry = take() else { return nil }
        let path = Self.components(entry.path)
        if path == Self.unitDirectory, entry.metadata.type == .directory { unitDirectory = entry.metadata }
        if let mask = masks.first, mask == path {
            // A unit file in /etc itself: replaced by the mask.
            masks.removeFirst()
            if let dir = unitDirectory {
                skipChildren(of: path, ifDirectory: entry.metadata.type == .directory)
                return maskEntry(mask, directory: dir)
            }
        }
        if path == [Array("etc".utf8), Array("fstab".utf8)], !fstabLines.isEmpty, entry.metadata.type == .regular,
           let reader = entry.reader {
            do {
                let original = try reader.readSmallFile(entry.metadata.inode, limit: 1 << 20)
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
                entry = NamespaceEntry(path: entry.path, metadata: meta, hardlinkTarget: nil, reader: generated, origin: "fwassemble --rehost")
            } catch {
                changes.append(RehostChange(path: "/etc/fstab", change: "left as is: \(FWError(error).message)"))
            }
        }
        return entry
    }

    private mutating func maskEntry(_ path: [[UInt8]], directory: Metadata) -> NamespaceEntry {
        let inode = generated.addSymlink("/mask-\(changes.count)", target: "/dev/null")
        var meta = (try? generated.metadata(of: inode)) ?? directory
        meta.mtime = directory.mtime
        changes.append(RehostChange(path: Self.display(path), change: "masked (symlink to /dev/null)"))
        return NamespaceEntry(path: Array(path.joined(separator: [0x2F])), metadata: meta, hardlinkTarget: nil,
                              reader: generated, origin: "fwassemble --rehost")
    }

    private mutating func skipChildren(of path: [[UInt8]], ifDirectory: Bool) {
        guard ifDirectory else { return }
        while let next = peek(), Self.components(next.path).starts(with: path), Self.components(next.path) != path { _ = take() }
    }

    private mutating func peek() -> NamespaceEntry? {
        if peeked == nil, !exhausted {
            peeked = base.next()
            if peeked == nil { exhausted = true }
        }
        return peeked
    }

    private mutating func take() -> NamespaceEntry? {
        let e = peek()
        peeked = nil
        return e
    }

    static func components(_ path: [UInt8]) -> [[UInt8]] { PathComponents.split(path) }

    /// Walk order: component by component, bytewise; a parent before its children.
    static func precedes(_ a: [[UInt8]], _ b: [[UInt8]]) -> Bool {
        for (x, y) in zip(a, b) where x != y { return x.lexicographicallyPrecedes(y) }
        return a.count < b.count
    }

    static func display(_ path: [[UInt8]]) -> String {
        "/" + path.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
    }
}

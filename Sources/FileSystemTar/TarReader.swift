import DiskImage
import FileSystems

/// A tar archive (ustar, pax, GNU long names) as a read-only filesystem: the headers are indexed
/// once (a pass over the headers, file data skipped), contents are read in place from the source.
/// With `ociWhiteouts`, an OCI image layer's `.wh.NAME` entries become overlay whiteouts (0:0
/// character devices named NAME) and `.wh..wh..opq` marks its directory opaque
/// (`trusted.overlay.opaque=y`), so the layer merges like a snapshot directory.
/// Later entries replace earlier ones at the same path, as extraction does; a hardlink names an
/// earlier entry and its header's mode, owner and times apply to the shared inode (as containerd
/// and dockerd extract); parent directories missing from the archive, and the root when the
/// archive has no "./" entry, are shown as 0755 root directories with time 0, marked implied
/// (`isImpliedDirectory`), so a merge keeps the metadata of a directory that is already there.
///
/// Indexing is linear in the archive's size: the inodes are one table (parent, name, children
/// by name), and a member's parent is found from the previous member's (a common byte prefix,
/// then only the new components), so 10,000 nested directories or 100,000 entries in one
/// directory cost what their headers cost. Entries that cannot be placed (docs/limits.md, "Tar
/// input") are skipped and counted in `problems`, one line per reason with the first paths.
public final class TarReader: FileSystemReader {
    public let formatName = "tar"
    public let sourceName: String
    public let rootInode: UInt64 = 1
    let source: any ByteSource
    /// Header blocks met (every member, with its pax and GNU long-name headers).
    public private(set) var entryCount = 0
    /// Members skipped or changed, by reason (the first paths of each, and how many).
    public private(set) var skipped = TarSkips()

    /// What went wrong while indexing, one line per reason: "3 entries not written (a '..'
    /// component): a/../../x, ../y, ../z".
    public var problems: [String] { skipped.lines }

    struct Node {
        var metadata: Metadata
        /// The directory holding it (the root's is itself) and its name there.
        var parent: UInt64
        var name: [UInt8]
        var children: [[UInt8]: UInt64] = [:]
        var dataOffset: UInt64 = 0
        /// A directory no member lists (made for a member below it).
        var implied = false
    }
    /// Inode `i` is `nodes[i - 1]`.
    var nodes: [Node] = []
    /// The last member's parent directory (normalised, "a/b") and the inode after each of its
    /// components (the byte offset where the component ends).
    var lastParent: [UInt8] = []
    var lastChain: [(end: Int, inode: UInt64)] = []
    static let maximumEntries = 1 << 22

    public init(source: any ByteSource, name: String, ociWhiteouts: Bool = false) throws {
        self.source = source
        self.sourceName = name
        nodes.append(Node(metadata: Self.impliedDirectory(inode: 1), parent: 1, name: [], implied: true))
        try index(ociWhiteouts: ociWhiteouts)
        lastParent = []
        lastChain = []
    }

    func error(_ message: String) -> FWError { FWError(.corrupt, message, at: source.place, path: sourceName) }

    static func impliedDirectory(inode: UInt64) -> Metadata {
        Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0), inode: inode)
    }

    /// True for a directory no member lists: its metadata is the default above, and a merge
    /// (an overlay, `--add-tar` into an image) keeps the metadata of the directory already there.
    public func isImpliedDirectory(_ inode: UInt64) -> Bool {
        inode >= 1 && inode <= UInt64(nodes.count) && nodes[Int(inode - 1)].implied
    }

    // MARK: Index

    private func index(ociWhiteouts: Bool) throws {
        var members = TarMembers(source: source, maximumHeaders: Self.maximumEntries, limitCode: .corrupt, errorPath: sourceName)
        defer { entryCount = members.headerCount }
        while let member = try members.next() {
            guard let path = Self.normalised(member.path) else {
                skipped.add(.unsafePath, member.path)
                continue
            }
            guard !path.isEmpty else {
                if member.type == UInt8(ascii: "5"), let m = metadata(member, type: .directory, size: 0, inode: 1) {
                    nodes[0].metadata = m
                    nodes[0].implied = false
                }
                continue
            }
            let slash = path.lastIndex(of: 0x2F)
            let leaf = slash.map { Array(path[($0 + 1)...]) } ?? path
            guard let parent = directory(slash.map { Array(path[..<$0]) } ?? []) else {
                skipped.add(.belowNonDirectory, path)
                continue
            }
            if ociWhiteouts, leaf.starts(with: Array(".wh.".utf8)) {
                addWhiteout(member, named: leaf, in: parent)
            } else if member.type == UInt8(ascii: "1") {
                addHardlink(member, named: leaf, in: parent)
            } else {
                add(member, named: leaf, in: parent)
            }
        }
    }

    /// Sets `name` in `parent` to `inode`.
    private func place(_ inode: UInt64, named name: [UInt8], in parent: UInt64) {
        nodes[Int(parent - 1)].children[name] = inode
    }

    /// A new inode; its number.
    private func newNode(_ node: Node) -> UInt64 {
        nodes.append(node)
        return UInt64(nodes.count)
    }

    /// An OCI whiteout: `.wh..wh..opq` marks `parent` opaque, `.wh.NAME` is a 0:0 character device NAME.
    private func addWhiteout(_ member: TarMember, named whiteout: [UInt8], in parent: UInt64) {
        if whiteout == Array(".wh..wh..opq".utf8) {
            nodes[Int(parent - 1)].metadata.xattrs.removeAll { $0.name == "trusted.overlay.opaque" }
            nodes[Int(parent - 1)].metadata.xattrs.append(ExtendedAttribute(name: "trusted.overlay.opaque", value: [0x79]))
            return
        }
        let name = Array(whiteout.dropFirst(4))
        guard var m = metadata(member, type: .characterDevice, size: 0, inode: UInt64(nodes.count + 1)) else { return }
        m.device = DeviceNumber(major: 0, minor: 0)
        place(newNode(Node(metadata: m, parent: parent, name: name)), named: name, in: parent)
    }

    /// A hardlink to an earlier entry (not a directory); a dangling one is skipped.
    private func addHardlink(_ member: TarMember, named name: [UInt8], in parent: UInt64) {
        guard let targetPath = Self.normalised(member.linkPath), let target = inode(at: targetPath),
              nodes[Int(target - 1)].metadata.type != .directory else {
            skipped.add(.missingHardlinkTarget, member.path)
            return
        }
        // As containerd and dockerd extract it: the link is made, then the link header's
        // mode, owner and times are applied to the (shared) inode.
        let existing = nodes[Int(target - 1)].metadata
        guard var m = metadata(member, type: existing.type, size: existing.size, inode: target) else { return }
        m.linkCount = existing.linkCount + 1
        m.symlinkTarget = existing.symlinkTarget
        m.device = existing.device
        if m.xattrs.isEmpty { m.xattrs = existing.xattrs }
        nodes[Int(target - 1)].metadata = m
        place(target, named: name, in: parent)
    }

    /// Any other member: a new inode named `name` in `parent`, or, for a directory that is already
    /// there, its metadata updated (xattrs merged).
    private func add(_ member: TarMember, named name: [UInt8], in parent: UInt64) {
        guard let fileType = Self.fileType(member.header) else {
            skipped.add(.unsupportedType, member.path)
            return
        }
        if fileType == .directory, let existing = nodes[Int(parent - 1)].children[name],
           nodes[Int(existing - 1)].metadata.type == .directory {
            let xattrs = nodes[Int(existing - 1)].metadata.xattrs
            guard var m = metadata(member, type: .directory, size: 0, inode: existing) else { return }
            m.xattrs = (m.xattrs + xattrs.filter { x in !m.xattrs.contains { $0.name == x.name } }).sorted { $0.name < $1.name }
            nodes[Int(existing - 1)].metadata = m
            nodes[Int(existing - 1)].implied = false
            return
        }
        let inode = UInt64(nodes.count + 1)
        guard var m = metadata(member, type: fileType, size: fileType == .regular ? member.size : 0, inode: inode) else { return }
        if fileType == .symlink { m.symlinkTarget = member.linkPath; m.size = UInt64(member.linkPath.count) }
        if fileType == .characterDevice || fileType == .blockDevice {
            // pax SCHILY.devmajor/devminor (numbers that do not fit the octal fields), else ustar's.
            m.device = DeviceNumber(major: UInt32(truncatingIfNeeded: member.paxNumber("SCHILY.devmajor") ?? member.header.deviceMajor ?? 0),
                                    minor: UInt32(truncatingIfNeeded: member.paxNumber("SCHILY.devminor") ?? member.header.deviceMinor ?? 0))
        }
        place(newNode(Node(metadata: m, parent: parent, name: name, dataOffset: member.dataOffset)), named: name, in: parent)
    }

    /// The file type of a typeflag this reader shows (hardlinks, '1', are handled apart).
    static func fileType(_ header: TarHeader) -> FileType? {
        if header.isRegularFile { return .regular }
        return switch header.type {
        case UInt8(ascii: "2"): .symlink
        case UInt8(ascii: "3"): .characterDevice
        case UInt8(ascii: "4"): .blockDevice
        case UInt8(ascii: "5"): .directory
        case UInt8(ascii: "6"): .fifo
        default: nil
        }
    }

    /// The member's metadata; nil (the member skipped and counted) when its owner does not fit
    /// 32 bits. A time beyond what ext4 holds is clamped to its range and counted.
    private func metadata(_ member: TarMember, type: FileType, size: UInt64, inode: UInt64) -> Metadata? {
        let h = member.header
        guard let uid = Self.owner(member, "uid", h.uid), let gid = Self.owner(member, "gid", h.gid) else {
            skipped.add(.ownerBeyond32Bits, member.path)
            return nil
        }
        var mtime = Timestamp(seconds: Int64(clamping: h.mtime ?? 0))
        if let text = member.pax["mtime"], let t = Self.paxTime(text) { mtime = t }
        if mtime.seconds < TarLimits.earliestTime || mtime.seconds > TarLimits.latestTime {
            skipped.add(.timeClamped, member.path)
            mtime = Timestamp(seconds: min(max(mtime.seconds, TarLimits.earliestTime), TarLimits.latestTime))
        }
        let xattrs = member.pax.compactMap { key, value in
            key.hasPrefix("SCHILY.xattr.") ? ExtendedAttribute(name: String(key.dropFirst(13)), value: value) : nil
        }
        return Metadata(type: type, permissions: UInt16(truncatingIfNeeded: (h.mode ?? 0) & 0o7777), uid: uid, gid: gid,
                        size: size, mtime: mtime, inode: inode, xattrs: xattrs)
    }

    /// A uid or gid: pax's record when there is one (a record that is no number in 0...2^32-1 is
    /// out of range, never the header's value instead), else the header's field.
    static func owner(_ member: TarMember, _ key: String, _ header: UInt64?) -> UInt32? {
        if let text = member.pax[key] {
            return UInt64(String(decoding: text, as: UTF8.self)).flatMap { UInt32(exactly: $0) }
        }
        return UInt32(exactly: header ?? 0)
    }

    /// A pax time: decimal seconds, an optional sign and fraction ("-1.5" is 1.5 s before the
    /// epoch); nil when it is not one, or beyond 64 bits.
    static func paxTime(_ text: [UInt8]) -> Timestamp? {
        let parts = text.split(separator: 0x2E, maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, let s = Int64(String(decoding: whole, as: UTF8.self)) else { return nil }
        var ns: UInt32 = 0
        if parts.count == 2 {
            let digits = parts[1].prefix(9)
            guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            ns = UInt32(String(decoding: digits + Array(repeating: 0x30, count: 9 - digits.count), as: UTF8.self)) ?? 0
        }
        guard whole.first == UInt8(ascii: "-"), ns > 0 else { return Timestamp(seconds: s, nanoseconds: ns) }
        guard s > Int64.min else { return nil }
        return Timestamp(seconds: s - 1, nanoseconds: 1_000_000_000 - ns)
    }
}

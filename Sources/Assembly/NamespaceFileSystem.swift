import DiskImage
import FileSystems

/// A problem met while assembling, attached to a namespace path.
public struct NamespaceProblem: Sendable, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// The namespace engine: filesystems mounted at paths, binds and overlays applied in order, seen
/// as one read-only `FileSystemReader`. The booted device's tree (`assemble`), a Docker
/// container's or image's merged layers (exports), and the planner's view of an overlay root
/// (balenaOS, OpenWrt) are all namespaces; `TreeWalk` walks them like any filesystem.
///
/// Semantics, as the kernel's: a path shows the latest mount whose mount point is the path or one
/// of its parents; a bind shows its source as the namespace had it when the bind was applied
/// (non-recursive, as `mount --bind`); an overlay merges its layers with `OverlayMerge`. Path
/// resolution (`resolve`) is the one resolver: names are matched by each filesystem's own lookup
/// (`entry(named:in:)`, so FAT's case-insensitive names resolve here as the planner resolves them).
///
/// Inode numbers are handles: a file of a mounted filesystem is its mount, its filesystem and
/// its inode packed into 64 bits, so the walk needs no table for it; only directories merged from
/// several overlay layers and directories made up for mount points are kept in a table (bounded
/// by the number of such directories).
public final class NamespaceFileSystem: FileSystemReader {
    public let formatName = "namespace"
    public let sourceName: String

    enum Node {
        case single(Layer, Metadata)
        case merged([Layer], Metadata)
        /// A directory that exists only because a mount point below it had to exist.
        case synthetic(Metadata)

        var metadata: Metadata {
            switch self {
            case .single(_, let m), .merged(_, let m), .synthetic(let m): return m
            }
        }
    }

    struct Mount {
        var path: NamespacePath
        var node: Node
        var origin: String
        /// The distinct filesystems the mount shows (a handle names one by its index here).
        var readers: [any FileSystemReader]
    }

    private(set) var mounts: [Mount] = []
    /// Problems met while mounting and walking (never fatal).
    public private(set) var problems: [NamespaceProblem] = []
    /// Filesystems mounted at more than one place: their inodes can be met through several paths.
    private var sharedFileSystems = Set<ObjectIdentifier>()
    /// Nodes that do not fit a packed handle, by `index | tableBit`.
    private var table: [(provider: Int, entry: TableEntry)] = []
    private var tableIndex: [TableKey: Int] = [:]
    /// Metadata already read while listing a merged directory, taken by the next `metadata(of:)`.
    private var listed: [UInt64: Metadata] = [:]
    /// Paths of directories that hold mount points below them (for listings without a path).
    private var ancestorPaths: [UInt64: NamespacePath] = [:]

    private enum TableEntry {
        case node(Node)
        /// A file or directory whose inode number does not fit a packed handle.
        case layer(Layer, overlaid: Bool)
    }

    private struct TableKey: Hashable {
        var provider: Int
        var layers: [FileIdentity]
        var overlaid = true
    }

    public init(name: String) {
        sourceName = name
    }

    /// The merged view of directory layers (top first), as overlayfs shows it: a container's or
    /// image's filesystem, or a planned overlay root.
    public convenience init(overlayOf layers: [Layer], name: String) throws {
        self.init(name: name)
        guard let top = layers.first else {
            throw FWError(.invalidArgument, "an overlay needs at least one layer", disk: name)
        }
        guard try top.reader.metadata(of: top.inode).type == .directory else {
            throw FWError(.invalidArgument, "overlay layer is not a directory", disk: name)
        }
        // The root shows the metadata of the topmost layer whose root has a record of its own
        // (a layer tar without a "./" member implies its root).
        let shown = layers.first { !$0.reader.isImpliedDirectory($0.inode) } ?? top
        let meta = try shown.reader.metadata(of: shown.inode)
        add(Mount(path: .root, node: .merged(layers, OverlayMerge.visible(meta.type == .directory ? meta : try top.reader.metadata(of: top.inode))),
                  origin: "/", readers: []))
    }

    // MARK: Mounting

    /// Mounts the root of `reader` at `path`. Throws when its root cannot be read.
    public func mount(_ reader: any FileSystemReader, at path: NamespacePath, origin: String) throws {
        let meta = try reader.metadata(of: reader.rootInode)
        add(Mount(path: path, node: .single(Layer(reader: reader, inode: reader.rootInode), meta), origin: origin, readers: []))
    }

    /// Binds `source` (resolved now, symlinks followed) at `path`. A missing source is noted as a
    /// problem and nothing is bound; returns whether the bind was applied.
    @discardableResult
    public func bind(_ source: NamespacePath, at path: NamespacePath, sourceText: String, origin fallback: String) -> Bool {
        guard let node = resolve(source.components, upTo: mounts.count) else {
            note(path.display, "bind source \(sourceText) does not exist in the namespace; not bound")
            return false
        }
        var origin = fallback
        if case .single(let layer, _) = node, let first = mounts.first(where: { m in
            if case .single(let l, _) = m.node { return l.filesystem == layer.filesystem } else { return false }
        }) {
            origin = first.origin
        }
        add(Mount(path: path, node: node, origin: origin, readers: []))
        return true
    }

    /// Mounts an overlay of namespace directories (upper first, then the lower ones) at `path`.
    /// Layers that are not directories are noted and skipped; with none left nothing is mounted.
    public func overlay(_ layerPaths: [(path: NamespacePath, text: String)], at path: NamespacePath, origin: String) {
        var layers: [Layer] = []
        for dir in layerPaths {
            switch resolve(dir.path.components, upTo: mounts.count) {
            case .single(let layer, let meta)? where meta.type == .directory:
                layers.append(layer)
            case .merged(let ls, _)?:
                layers += ls
            default:
                note(path.display, "overlay layer \(dir.text) is not a directory in the namespace; layer skipped")
            }
        }
        guard let top = layers.first else { return }
        do {
            let meta = try top.reader.metadata(of: top.inode)
            add(Mount(path: path, node: .merged(layers, OverlayMerge.visible(meta)), origin: origin, readers: []))
        } catch {
            note(path.display, "overlay's top layer cannot be read (\(FWError(error).message)); not mounted")
        }
    }

    /// Records a problem (the caller's, e.g. a partition that could not be opened).
    public func note(_ path: String, _ message: String) {
        problems.append(NamespaceProblem(path: path, message: message))
    }

    private func add(_ mount: Mount) {
        var mount = mount
        var seen = Set<ObjectIdentifier>()
        for layer in Self.layers(of: mount.node) where seen.insert(layer.filesystem).inserted {
            mount.readers.append(layer.reader)
        }
        mounts.append(mount)
        var counts: [ObjectIdentifier: Int] = [:]
        for m in mounts {
            for r in m.readers { counts[ObjectIdentifier(r), default: 0] += 1 }
        }
        sharedFileSystems = Set(counts.filter { $0.value > 1 }.keys)
    }

    private static func layers(of node: Node) -> [Layer] {
        switch node {
        case .single(let layer, _): return [layer]
        case .merged(let layers, _): return layers
        case .synthetic: return []
        }
    }

    /// True when the first mount applied is at "/" (as a booted system's root is).
    public var rootMountedFirst: Bool { mounts.first?.path.isRoot == true }

    // MARK: Resolution

    /// The index of the mount providing `path` among the first `count` mounts: the latest whose
    /// mount point is the path or a parent of it.
    func providingMount(_ path: [[UInt8]], upTo count: Int) -> Int? {
        var best: Int?
        for i in 0..<min(count, mounts.count) {
            let p = mounts[i].path.components
            if p.count <= path.count, path.starts(with: p) { best = i }
        }
        return best
    }

    /// Resolves a namespace path as the first `count` mounts make it, following symlinks
    /// (absolute ones from the namespace root, the last component too, as mount(8) does) at most
    /// 40 times.
    func resolve(_ path: [[UInt8]], upTo count: Int) -> Node? {
        resolvePath(path, upTo: count)?.node
    }

    /// `resolve`, with the path it arrived at (no symlinks, no "." or ".."): `PathResolver` over
    /// the namespace as the first `count` mounts make it.
    private func resolvePath(_ path: [[UInt8]], upTo count: Int) -> (node: Node, path: [[UInt8]])? {
        guard let root = nodeAt([], upTo: count) else { return nil }
        let resolver = PathResolver<Node>(root: root, child: { _, parentPath, name in
            self.nodeAt(parentPath + [name], upTo: count)
        }, symlinkTarget: { node in
            node.metadata.type == .symlink ? node.metadata.symlinkTarget : nil
        })
        return (try? resolver.resolve(path, followLast: true)) ?? nil   // only throws past 40 symlinks: the path resolves to nothing (ELOOP)
    }

    /// The path `path` resolves to: every symlink followed (the last one too, absolute ones from
    /// the namespace root, at most 40), nil when a component does not exist.
    public func canonicalPath(_ path: NamespacePath) -> NamespacePath? {
        return resolvePath(path.components, upTo: mounts.count).map { NamespacePath(components: $0.path) }
    }

    /// The node at an already-resolved path (no symlinks in its parents).
    private func nodeAt(_ path: [[UInt8]], upTo count: Int) -> Node? {
        guard let m = providingMount(path, upTo: count) else { return nil }
        var node = mounts[m].node
        var sofar = mounts[m].path.components
        for component in path.dropFirst(mounts[m].path.depth) {
            sofar.append(component)
            if let next = child(of: node, named: component) {
                node = next
            } else if mounts.prefix(count).contains(where: { $0.path.depth > sofar.count && $0.path.components.starts(with: sofar) }) {
                // Missing, but a mount point lies below it: the directory the walk shows for it
                // (systemd makes mount points), so paths through it resolve as they are walked.
                var meta = node.metadata
                meta.xattrs = []
                meta.inode = 0
                node = .synthetic(meta)
            } else {
                return nil
            }
        }
        return node
    }

    /// The entry `name` of a layer's directory and its metadata, nil when it is missing or cannot
    /// be read: a path through it resolves to nothing here, and the walk, which lists and reads
    /// every entry itself, reports the damage once.
    private static func lookup(_ name: [UInt8], in layer: Layer) -> (UInt64, Metadata)? {
        let found = try? layer.reader.entry(named: name, in: layer.inode).map { ($0.inode, try layer.reader.metadata(of: $0.inode)) }   // see above: the walk reports it
        return found ?? nil
    }

    /// A child of a directory node by name, as the filesystem's own lookup finds it.
    private func child(of node: Node, named name: [UInt8]) -> Node? {
        switch node {
        case .single(let layer, let meta):
            guard meta.type == .directory, let (inode, m) = Self.lookup(name, in: layer) else { return nil }
            return .single(Layer(reader: layer.reader, inode: inode), m)
        case .merged(let layers, _):
            let children = OverlayMerge.children(of: layers) { _, _ in }
            guard let c = children.first(where: { $0.name == name }) else { return nil }
            return Self.node(for: c.child)
        case .synthetic:
            return nil
        }
    }

    static func node(for child: OverlayMerge.Child) -> Node {
        switch child {
        case .file(let layer, let entry, let meta):
            return .single(Layer(reader: layer.reader, inode: entry.inode), OverlayMerge.visible(meta))
        case .directory(let layers, let meta):
            // Merged even with one layer: overlayfs still hides whiteouts and overlay xattrs
            // below a directory that only one layer has.
            return .merged(layers, OverlayMerge.visible(meta))
        }
    }

    /// The filesystem directory or file a namespace path shows (symlinks followed as the booted
    /// device would), or nil when the path does not exist or is a directory merged from several
    /// overlay layers. The Docker inspector finds data-roots with it.
    public func locate(_ path: NamespacePath) -> (layer: Layer, metadata: Metadata)? {
        switch resolve(path.components, upTo: mounts.count) {
        case .single(let layer, let meta)?: return (layer, meta)
        case .merged(let layers, let meta)? where layers.count == 1: return (layers[0], meta)
        default: return nil
        }
    }

    /// True when `path` exists in the namespace (symlinks followed, the last one too).
    public func exists(_ path: NamespacePath) -> Bool {
        return resolve(path.components, upTo: mounts.count) != nil
    }

    // MARK: Handles

    // Packed: bit 62 "seen through an overlay", bits 48-61 the providing mount, bits 40-47 the
    // filesystem's index among the mount's readers, bits 0-39 the inode. Bit 63: a table index.
    private static let tableBit: UInt64 = 1 << 63
    private static let overlaidBit: UInt64 = 1 << 62
    private static let inodeMask: UInt64 = (1 << 40) - 1

    private func handle(provider: Int, layer: Layer, overlaid: Bool) -> UInt64 {
        if provider < 1 << 14, layer.inode <= Self.inodeMask,
           let index = mounts[provider].readers.firstIndex(where: { ObjectIdentifier($0) == layer.filesystem }), index < 256 {
            return (overlaid ? Self.overlaidBit : 0) | UInt64(provider) << 48 | UInt64(index) << 40 | layer.inode
        }
        // Too large to pack (an inode number over 40 bits): kept in the table.
        return tableHandle(provider: provider, entry: .layer(layer, overlaid: overlaid),
                           key: TableKey(provider: provider, layers: [layer.identity], overlaid: overlaid))
    }

    private func tableHandle(provider: Int, entry: TableEntry, key: TableKey?) -> UInt64 {
        if let key, let index = tableIndex[key] { return UInt64(index) | Self.tableBit }
        table.append((provider, entry))
        if let key { tableIndex[key] = table.count - 1 }
        return UInt64(table.count - 1) | Self.tableBit
    }

    /// The handle of a node provided by mount `provider`.
    private func handle(provider: Int, node: Node) -> UInt64 {
        switch node {
        case .single(let layer, _):
            return handle(provider: provider, layer: layer, overlaid: false)
        case .merged(let layers, _) where layers.count == 1:
            return handle(provider: provider, layer: layers[0], overlaid: true)
        case .merged(let layers, _):
            return tableHandle(provider: provider, entry: .node(node), key: TableKey(provider: provider, layers: layers.map(\.identity)))
        case .synthetic:
            return tableHandle(provider: provider, entry: .node(node), key: nil)
        }
    }

    /// The mount and filesystem layer behind a packed handle, without reading anything.
    private func packedLayer(_ handle: UInt64) -> (provider: Int, layer: Layer)? {
        guard handle & Self.tableBit == 0 else { return nil }
        let provider = Int((handle >> 48) & 0x3FFF)
        let index = Int((handle >> 40) & 0xFF)
        guard provider < mounts.count, index < mounts[provider].readers.count else { return nil }
        return (provider, Layer(reader: mounts[provider].readers[index], inode: handle & Self.inodeMask))
    }

    func decode(_ handle: UInt64) throws -> (provider: Int, node: Node) {
        let provider: Int
        let layer: Layer
        let overlaid: Bool
        if let (p, l) = packedLayer(handle) {
            (provider, layer, overlaid) = (p, l, handle & Self.overlaidBit != 0)
        } else if handle & Self.tableBit != 0, Int(handle & ~Self.tableBit) < table.count {
            let row = table[Int(handle & ~Self.tableBit)]
            switch row.entry {
            case .node(let node): return (row.provider, node)
            case .layer(let l, let o): (provider, layer, overlaid) = (row.provider, l, o)
            }
        } else {
            throw FWError(.notFound, "namespace inode \(handle) was never listed", disk: sourceName)
        }
        var meta = try listed.removeValue(forKey: handle) ?? layer.reader.metadata(of: layer.inode)
        guard overlaid else { return (provider, .single(layer, meta)) }
        meta = OverlayMerge.visible(meta)
        return (provider, meta.type == .directory ? .merged([layer], meta) : .single(layer, meta))
    }

    // MARK: FileSystemReader

    /// The root: the latest mount at "/" (an overlay over the root partition, as a balenaOS
    /// hostapp root is); mounts made before it are hidden below it.
    public var rootInode: UInt64 {
        guard let top = providingMount([], upTo: mounts.count) else { return Self.tableBit | UInt64(Int32.max) }
        let h = handle(provider: top, node: mounts[top].node)
        ancestorPaths[h] = .root
        return h
    }

    public func metadata(of inode: UInt64) throws -> Metadata {
        var meta = try decode(inode).node.metadata
        meta.inode = inode
        return meta
    }

    /// Without a path, only a directory met on the way to a mount point (the root included)
    /// shows the mount points below it; any other directory has none.
    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        try entries(of: inode, at: ancestorPaths[inode])
    }

    public func directoryEntries(of inode: UInt64, at path: NamespacePath) throws -> [DirectoryEntry] {
        try entries(of: inode, at: path)
    }

    private func entries(of inode: UInt64, at path: NamespacePath?) throws -> [DirectoryEntry] {
        let (provider, node) = try decode(inode)
        guard node.metadata.type == .directory else {
            throw FWError(.invalidArgument, "namespace inode \(inode) is not a directory", disk: sourceName)
        }
        return children(of: node, at: path, provider: provider)
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        guard case .single(let layer, _) = try decode(inode).node else {
            throw FWError(.invalidArgument, "namespace inode \(inode) is not a file", disk: sourceName)
        }
        return try layer.reader.openFile(layer.inode)
    }

    public func linkIdentity(of inode: UInt64) -> FileIdentity {
        if let (_, layer) = packedLayer(inode) { return layer.identity }
        guard inode & Self.tableBit != 0, Int(inode & ~Self.tableBit) < table.count else {
            return FileIdentity(filesystem: ObjectIdentifier(self), inode: inode)
        }
        switch table[Int(inode & ~Self.tableBit)].entry {
        case .layer(let layer, _), .node(.single(let layer, _)): return layer.identity
        case .node(.merged(let layers, _)): return layers[0].identity
        case .node(.synthetic): return FileIdentity(filesystem: ObjectIdentifier(self), inode: 0)
        }
    }

    public func mayAppearAgain(_ inode: UInt64) -> Bool {
        sharedFileSystems.contains(linkIdentity(of: inode).filesystem)
    }

    /// The origin of an entry, for per-partition counts: "partition 8", or the mount point of
    /// an overlay or a bind of a directory that no partition mount shows.
    public func origin(of inode: UInt64) -> String {
        let provider = view(of: inode)
        return provider < mounts.count ? mounts[provider].origin : sourceName
    }

    /// The mount that provides an entry (its index in mount order), read from the handle.
    public func view(of inode: UInt64) -> Int {
        inode & Self.tableBit != 0
            ? (Int(inode & ~Self.tableBit) < table.count ? table[Int(inode & ~Self.tableBit)].provider : 0)
            : Int((inode >> 48) & 0x3FFF)
    }

    /// The children of a directory at `path` (provided by mount `provider`): its own entries,
    /// plus mount points of later mounts directly below it (none when the path is unknown).
    private func children(of node: Node, at path: NamespacePath?, provider: Int) -> [DirectoryEntry] {
        var result: [[UInt8]: UInt64] = [:]
        let shown = path?.display ?? sourceName
        switch node {
        case .single(let layer, _):
            do {
                for entry in try layer.reader.directoryEntries(of: layer.inode) {
                    result[entry.name] = handle(provider: provider, layer: Layer(reader: layer.reader, inode: entry.inode), overlaid: false)
                }
            } catch {
                note(shown, FWError(error).description)
            }
        case .merged(let layers, _):
            for c in OverlayMerge.children(of: layers, problem: { what, error in
                self.note(shown, "\(what): \(FWError(error).description)")
            }) {
                // A file of a merged directory is marked overlaid, so that its metadata shows
                // no overlay xattr (trusted.overlay.origin of a copied-up file) however it is read.
                let h: UInt64
                if case .file(let layer, let entry, _) = c.child {
                    h = handle(provider: provider, layer: Layer(reader: layer.reader, inode: entry.inode), overlaid: true)
                } else {
                    h = handle(provider: provider, node: Self.node(for: c.child))
                }
                if packedLayer(h) != nil {
                    switch c.child {
                    case .file(_, _, let meta), .directory(_, let meta): listed[h] = meta
                    }
                }
                result[c.name] = h
            }
        case .synthetic:
            break
        }
        // Mounts below this directory applied after its provider.
        guard let path else { return result.map { DirectoryEntry(name: $0.key, inode: $0.value) } }
        let here = path.components
        for i in (provider + 1)..<max(provider + 1, mounts.count) {
            let mp = mounts[i].path.components
            guard mp.count > here.count, mp.starts(with: here) else { continue }
            let name = mp[here.count]
            let childPath = path.child(name)
            // Only a mount still visible (not hidden by a later mount over a parent) counts.
            guard providingMount(mp, upTo: mounts.count) == i else { continue }
            if let covering = providingMount(childPath.components, upTo: mounts.count), covering > provider,
               mounts[covering].path == childPath {
                result[name] = handle(provider: covering, node: mounts[covering].node)
            } else if result[name] == nil {
                note(childPath.display, "parent of mount point \(mounts[i].path.display) does not exist; shown as an empty directory")
                var meta = node.metadata
                meta.xattrs = []
                meta.inode = 0
                result[name] = handle(provider: provider, node: .synthetic(meta))
            }
            if let h = result[name] { ancestorPaths[h] = childPath }
        }
        return result.map { DirectoryEntry(name: $0.key, inode: $0.value) }
    }
}

extension Layer {
    /// The layer directory's identity (filesystem and inode).
    public var identity: FileIdentity { FileIdentity(filesystem: filesystem, inode: inode) }
}

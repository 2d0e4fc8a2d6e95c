import DiskImage
import FileSystems
import MountPlan

/// One entry of the assembled namespace, in walk order.
public struct NamespaceEntry {
    /// Path below the namespace root: "" for the root, "etc/fstab" below it (raw bytes).
    public var path: [UInt8]
    /// The entry's metadata as the booted device shows it (overlay-private xattrs removed).
    public var metadata: Metadata
    /// Set when this non-directory was already written at another path (a hardlink inside one
    /// filesystem, or the same inode seen again through a bind mount).
    public var hardlinkTarget: [UInt8]?
    /// The filesystem holding the entry (to read a regular file's contents); nil for a directory
    /// fwassemble had to make up because a mount point's parent did not exist.
    public var reader: (any FileSystemReader)?
    /// Which mounted filesystem it comes from, for per-partition counts ("partition 8").
    public var origin: String

    public var displayPath: String { "/" + String(decoding: path, as: UTF8.self) }
}

/// A problem met while assembling, attached to a namespace path.
public struct NamespaceProblem: Sendable, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// The booted device's filesystem tree: the root with every planned mount applied, walked in a
/// stable sorted order (depth first, names bytewise).
///
/// Mounts apply in plan order; a path shows the latest mount whose mount point is the path or one
/// of its parents. A bind shows its source as the namespace had it when the bind was applied
/// (non-recursive, as `mount --bind`); an overlay merges its layers the overlayfs way.
public final class Namespace {
    /// Opens a partition's filesystem (nil when the partition has none).
    public typealias Opener = (Int) throws -> (any FileSystemReader)?
    /// Opens the filesystem starting at a byte offset inside a partition (nil when none).
    public typealias OffsetOpener = (Int, UInt64) throws -> (any FileSystemReader)?

    struct Mount {
        var path: [[UInt8]]
        var node: Node?
        var origin: String
    }

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

    private(set) var mounts: [Mount] = []
    /// Problems met while resolving mounts and walking (never fatal).
    public private(set) var problems: [NamespaceProblem] = []
    /// Filesystems mounted at more than one place: their inodes can be met through several paths.
    private var sharedFileSystems = Set<ObjectIdentifier>()

    public init(plan: Plan, open: Opener, openAt: OffsetOpener? = nil) throws {
        var counts: [ObjectIdentifier: Int] = [:]
        for (index, m) in plan.mounts.enumerated() {
            let path = PathComponents.split(Array(m.where.utf8))
            var mount = Mount(path: path, node: nil, origin: m.partition.map { "partition \($0)" } ?? m.where)
            switch m.kind {
            case .partition:
                guard let number = m.partition else { continue }
                do {
                    let opened: (any FileSystemReader)?
                    if let offset = m.offset, offset != 0 {
                        opened = try openAt?(number, offset)
                    } else {
                        opened = try open(number)
                    }
                    guard let reader = opened else {
                        note(m.where, "partition \(number)\(m.offset.map { " at offset \($0)" } ?? "") has no readable filesystem; not mounted")
                        continue
                    }
                    let meta = try reader.metadata(of: reader.rootInode)
                    mount.node = .single(Layer(reader: reader, inode: reader.rootInode), meta)
                } catch {
                    if index == 0 { throw error }
                    note(m.where, "partition \(number): \(FWError(error).description); not mounted")
                    continue
                }
            case .bind:
                guard let what = m.what else { continue }
                var hops = 0
                if let node = resolve(PathComponents.split(Array(what.utf8)), upTo: mounts.count, hops: &hops) {
                    mount.node = node
                    if case .single(let layer, _) = node { mount.origin = originOf(layer) ?? mount.origin }
                } else {
                    note(m.where, "bind source \(what) does not exist in the namespace; not bound")
                    continue
                }
            case .overlay:
                var layers: [Layer] = []
                for dir in [m.upper].compactMap({ $0 }) + (m.lower ?? []) {
                    var hops = 0
                    switch resolve(PathComponents.split(Array(dir.utf8)), upTo: mounts.count, hops: &hops) {
                    case .single(let layer, let meta)? where meta.type == .directory:
                        layers.append(layer)
                    case .merged(let ls, _)?:
                        layers += ls
                    default:
                        note(m.where, "overlay layer \(dir) is not a directory in the namespace; layer skipped")
                    }
                }
                guard let top = layers.first, let meta = try? top.reader.metadata(of: top.inode) else { continue }
                mount.node = .merged(layers, OverlayMerge.visible(meta))
            }
            if case .single(let layer, _)? = mount.node { counts[layer.filesystem, default: 0] += 1 }
            if case .merged(let ls, _)? = mount.node { for l in ls { counts[l.filesystem, default: 0] += 1 } }
            mounts.append(mount)
        }
        guard !mounts.isEmpty, mounts[0].path.isEmpty else {
            throw FWError(.notFound, "the plan has no root mount")
        }
        sharedFileSystems = Set(counts.filter { $0.value > 1 }.keys)
    }

    private func originOf(_ layer: Layer) -> String? {
        mounts.first { if case .single(let l, _)? = $0.node { return l.filesystem == layer.filesystem } else { return false } }?.origin
    }

    private func note(_ path: String, _ message: String) {
        problems.append(NamespaceProblem(path: path, message: message))
    }

    // MARK: Resolution

    /// The index of the mount providing `path` among the first `count` mounts: the latest whose
    /// mount point is the path or a parent of it.
    func providingMount(_ path: [[UInt8]], upTo count: Int) -> Int? {
        var best: Int?
        for i in 0..<min(count, mounts.count) where mounts[i].node != nil {
            let p = mounts[i].path
            if p.count <= path.count, Array(path.prefix(p.count)) == p { best = i }
        }
        return best
    }

    /// Resolves a namespace path as the first `count` mounts make it, following symlinks
    /// (absolute ones from the namespace root, the last component too, as mount(8) does) at most
    /// 40 times.
    func resolve(_ path: [[UInt8]], upTo count: Int, hops: inout Int) -> Node? {
        var resolved: [[UInt8]] = []
        var remaining = path[...]
        while let component = remaining.first {
            remaining = remaining.dropFirst()
            if component == [0x2E] { continue }
            if component == [0x2E, 0x2E] { _ = resolved.popLast(); continue }
            let candidate = resolved + [component]
            guard let node = nodeAt(candidate, upTo: count) else { return nil }
            let meta = node.metadata
            if meta.type == .symlink, let target = meta.symlinkTarget {
                hops += 1
                guard hops <= PathComponents.maximumSymlinkHops else { return nil }
                let base: [[UInt8]] = target.first == 0x2F ? [] : resolved
                return resolve(base + PathComponents.split(target) + Array(remaining), upTo: count, hops: &hops)
            }
            resolved = candidate
        }
        return nodeAt(resolved, upTo: count)
    }

    /// The node at an already-resolved path (no symlinks in its parents).
    private func nodeAt(_ path: [[UInt8]], upTo count: Int) -> Node? {
        guard let m = providingMount(path, upTo: count), let root = mounts[m].node else { return nil }
        var node = root
        for component in path.dropFirst(mounts[m].path.count) {
            guard let next = child(of: node, named: component) else { return nil }
            node = next
        }
        return node
    }

    /// A child of a directory node by name.
    private func child(of node: Node, named name: [UInt8]) -> Node? {
        switch node {
        case .single(let layer, let meta):
            guard meta.type == .directory,
                  let entries = try? layer.reader.directoryEntries(of: layer.inode),
                  let entry = entries.first(where: { $0.name == name }),
                  let m = try? layer.reader.metadata(of: entry.inode) else { return nil }
            return .single(Layer(reader: layer.reader, inode: entry.inode), m)
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

    /// The filesystem directory or file a namespace path shows (symlinks followed as the
    /// booted device would), or nil when the path does not exist or is a directory merged from several overlay layers.
    /// Used by the Docker inspector to find data-roots.
    public func locate(_ path: String) -> (layer: Layer, metadata: Metadata)? {
        var hops = 0
        switch resolve(PathComponents.split(Array(path.utf8)), upTo: mounts.count, hops: &hops) {
        case .single(let layer, let meta)?: return (layer, meta)
        case .merged(let layers, let meta)? where layers.count == 1: return (layers[0], meta)
        default: return nil
        }
    }

    // MARK: Walking

    /// The entries of the namespace in walk order.
    public func entries() -> NamespaceWalk {
        NamespaceWalk(namespace: self)
    }

    /// The children of a directory at `path` (provided by mount `provider`): its own entries,
    /// plus mount points of later mounts directly below it.
    func children(of node: Node, at path: [[UInt8]], provider: Int) -> [(name: [UInt8], node: Node, provider: Int)] {
        var result: [[UInt8]: (node: Node, provider: Int)] = [:]
        switch node {
        case .single(let layer, _):
            do {
                for entry in try layer.reader.directoryEntries(of: layer.inode) {
                    if entry.name == [0x2E] || entry.name == [0x2E, 0x2E] { continue }
                    // A corrupt directory can hold names no path can carry ("a/b", "x\0y", ""):
                    // skipped and reported, as the tree walk does.
                    if entry.name.isEmpty || entry.name.contains(0x2F) || entry.name.contains(0) {
                        note(Self.display(path), "entry with an invalid name \(entry.name) (inode \(entry.inode)) skipped")
                        continue
                    }
                    do {
                        let m = try layer.reader.metadata(of: entry.inode)
                        result[entry.name] = (.single(Layer(reader: layer.reader, inode: entry.inode), m), provider)
                    } catch {
                        note(Self.display(path + [entry.name]), FWError(error).description)
                    }
                }
            } catch {
                note(Self.display(path), FWError(error).description)
            }
        case .merged(let layers, _):
            for c in OverlayMerge.children(of: layers, problem: { what, error in
                self.note(Self.display(path), "\(what): \(FWError(error).description)")
            }) {
                result[c.name] = (Self.node(for: c.child), provider)
            }
        case .synthetic:
            break
        }
        // Mounts below this directory applied after its provider.
        for i in (provider + 1)..<mounts.count {
            let mp = mounts[i].path
            guard mp.count > path.count, Array(mp.prefix(path.count)) == path, let mountNode = mounts[i].node else { continue }
            let name = mp[path.count]
            let childPath = path + [name]
            // Only a mount still visible (not hidden by a later mount over a parent) counts.
            guard providingMount(mp, upTo: mounts.count) == i else { continue }
            if let covering = providingMount(childPath, upTo: mounts.count), covering > provider, mounts[covering].path == childPath {
                result[name] = (mounts[covering].node ?? mountNode, covering)
            } else if result[name] == nil {
                note(Self.display(childPath), "parent of mount point \(Self.display(mp)) does not exist; shown as an empty directory")
                var meta = node.metadata
                meta.xattrs = []
                meta.inode = 0
                result[name] = (.synthetic(meta), provider)
            }
        }
        return result.map { ($0.key, $0.value.node, $0.value.provider) }.sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }

    static func display(_ path: [[UInt8]]) -> String {
        "/" + path.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
    }

    func isShared(_ layer: Layer) -> Bool { sharedFileSystems.contains(layer.filesystem) }

    func origin(of provider: Int) -> String { mounts[provider].origin }

    func record(_ path: [[UInt8]], _ message: String) { note(Self.display(path), message) }
}

/// The sorted walk of a namespace. Hardlink identity: a non-directory met again (same filesystem
/// and inode) is returned with `hardlinkTarget` set to the first path it was met at.
public struct NamespaceWalk: Sequence, IteratorProtocol {
    private let namespace: Namespace
    private var stack: [Frame] = []
    private var started = false
    private var firstPaths: [Key: [UInt8]] = [:]

    private struct Key: Hashable {
        var filesystem: ObjectIdentifier
        var inode: UInt64
    }

    private struct Frame {
        var path: [[UInt8]]
        var children: [(name: [UInt8], node: Namespace.Node, provider: Int)]
        var index: Int
        /// Directory identities on the current path (cycle guard).
        var identity: Key?
        /// The mount providing the directory: the same directory met again through another
        /// mount (the physical root below a balenaOS hostapp overlay) is not a cycle, since
        /// mount points hang on paths and a walk below the deepest one stays in one mount.
        var provider: Int
    }

    init(namespace: Namespace) {
        self.namespace = namespace
    }

    public mutating func next() -> NamespaceEntry? {
        if !started {
            started = true
            // The latest mount at "/" is the root (an overlay over the root partition, as a
            // balenaOS hostapp root is); mounts made before it are hidden below it.
            guard let top = namespace.providingMount([], upTo: namespace.mounts.count),
                  let root = namespace.mounts[top].node else { return nil }
            push(path: [], node: root, provider: top)
            return entry(path: [], node: root, provider: top)
        }
        while var frame = stack.popLast() {
            guard frame.index < frame.children.count else { continue }
            let child = frame.children[frame.index]
            frame.index += 1
            stack.append(frame)
            let path = frame.path + [child.name]
            if path.count == 1, child.name == Array("igloo".utf8) || child.name == Array("nix".utf8) {
                namespace.record(path, "penguin adds this directory itself; the image's own copy is left out")
                continue
            }
            if child.node.metadata.type == .directory {
                if stack.count >= WalkLimits.maximumDepth {
                    namespace.record(path, "deeper than \(WalkLimits.maximumDepth) directories; not descended")
                } else if let id = identity(child.node), stack.contains(where: { $0.identity == id && $0.provider == child.provider }) {
                    namespace.record(path, "directory contains itself; not descended")
                } else {
                    push(path: path, node: child.node, provider: child.provider)
                }
            }
            return entry(path: path, node: child.node, provider: child.provider)
        }
        return nil
    }

    private func identity(_ node: Namespace.Node) -> Key? {
        if case .single(let layer, _) = node { return Key(filesystem: layer.filesystem, inode: layer.inode) }
        if case .merged(let layers, _) = node, layers.count == 1 { return Key(filesystem: layers[0].filesystem, inode: layers[0].inode) }
        return nil
    }

    private mutating func push(path: [[UInt8]], node: Namespace.Node, provider: Int) {
        let children = namespace.children(of: node, at: path, provider: provider)
        stack.append(Frame(path: path, children: children, index: 0, identity: identity(node), provider: provider))
    }

    private mutating func entry(path: [[UInt8]], node: Namespace.Node, provider: Int) -> NamespaceEntry {
        let joined = Array(path.joined(separator: [0x2F]))
        var meta = node.metadata
        var reader: (any FileSystemReader)?
        switch node {
        case .single(let layer, _): reader = layer.reader
        case .merged(let layers, _): reader = layers.first?.reader
        case .synthetic: reader = nil
        }
        var target: [UInt8]?
        if meta.type != .directory, case .single(let layer, _) = node, meta.linkCount > 1 || namespace.isShared(layer) {
            let key = Key(filesystem: layer.filesystem, inode: layer.inode)
            if let first = firstPaths[key] {
                target = first
            } else {
                firstPaths[key] = joined
            }
        }
        if case .merged = node { meta = OverlayMerge.visible(meta) }
        return NamespaceEntry(path: joined, metadata: meta, hardlinkTarget: target, reader: reader, origin: namespace.origin(of: provider))
    }
}

import DiskImage
import FileSystems

/// Where an entry of a namespace comes from: the mount that shows it, the filesystem that stores
/// it, and for an overlay the layer it is taken from (`stat`'s "source" fields).
public struct Provenance: Sendable, Equatable {
    /// The mount's index in plan order, its mount point and origin ("partition 8", or the mount
    /// point of an overlay or of a bind no partition mount shows).
    public var mount: Int
    public var mountPoint: String
    public var origin: String
    /// The filesystem storing the entry ("disk.img partition 8 (hassos-data)") and its format;
    /// nil for a directory made up for a mount point.
    public var filesystem: String?
    public var format: String?
    /// The entry's inode number in that filesystem.
    public var inode: UInt64?
    /// For a path below an overlay: the index (0 = upper) of the topmost layer that holds it,
    /// and how many layers the overlay has.
    public var layer: Int?
    public var layers: Int?

    public init(mount: Int, mountPoint: String, origin: String, filesystem: String? = nil, format: String? = nil,
                inode: UInt64? = nil, layer: Int? = nil, layers: Int? = nil) {
        (self.mount, self.mountPoint, self.origin) = (mount, mountPoint, origin)
        (self.filesystem, self.format, self.inode) = (filesystem, format, inode)
        (self.layer, self.layers) = (layer, layers)
    }
}

extension NamespaceFileSystem {
    /// Where the entry `inode` (a handle this namespace gave) found at `path` (resolved: no
    /// symlinks, no "." or "..") comes from. Reads at most the components of `path` below an
    /// overlay's mount point in each of its layers.
    public func provenance(of inode: UInt64, at path: NamespacePath) -> Provenance {
        let provider = view(of: inode)
        guard provider < mounts.count else {
            return Provenance(mount: provider, mountPoint: "/", origin: sourceName)
        }
        let mount = mounts[provider]
        var result = Provenance(mount: provider, mountPoint: mount.path.display, origin: mount.origin)
        let identity = linkIdentity(of: inode)
        if identity.filesystem != ObjectIdentifier(self), let reader = Self.reader(identity.filesystem, in: mount.node) {
            result.filesystem = reader.sourceName
            result.format = reader.formatName
            result.inode = identity.inode
        }
        if case .merged(let layers, _) = mount.node, layers.count > 1, let below = path.relative(to: mount.path) {
            result.layers = layers.count
            result.layer = layers.firstIndex { Self.holds($0, below) }
        }
        return result
    }

    /// The reader `filesystem` names among a mount node's layers.
    private static func reader(_ filesystem: ObjectIdentifier, in node: Node) -> (any FileSystemReader)? {
        switch node {
        case .single(let layer, _): return layer.filesystem == filesystem ? layer.reader : nil
        case .merged(let layers, _): return layers.first { $0.filesystem == filesystem }?.reader
        case .synthetic: return nil
        }
    }

    /// True when `layer` has an entry (not a whiteout) at the components below it; an unreadable
    /// layer holds nothing as far as this answer goes (the walk reports the damage).
    private static func holds(_ layer: Layer, _ components: [[UInt8]]) -> Bool {
        var inode = layer.inode
        do {
            for name in components {
                guard let entry = try layer.reader.entry(named: name, in: inode) else { return false }
                inode = entry.inode
            }
            let meta = try layer.reader.metadata(of: inode)
            return !OverlayMerge.isWhiteout(meta)
        } catch {
            return false
        }
    }
}

extension NamespaceFileSystem {
    /// The entry called `name` in the directory `inode` found at `path`, as the kernel's lookup
    /// finds it: by its exact name among the directory's children (mount points below `path`
    /// included), else by the filesystem's own lookup (FAT compares names case-insensitively),
    /// returned with its stored name. Nil when there is none.
    public func entry(named name: [UInt8], in inode: UInt64, at path: NamespacePath) throws -> DirectoryEntry? {
        let children = try directoryEntries(of: inode, at: path)
        if let exact = children.first(where: { $0.name == name }) { return exact }
        guard case .single(let layer, _) = try decode(inode).node,
              let stored = try layer.reader.entry(named: name, in: layer.inode), stored.name != name else { return nil }
        return children.first { $0.name == stored.name }
    }
}

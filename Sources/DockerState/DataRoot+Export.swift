import Assembly
import DiskImage
import FileSystems

/// One entry of a merged container or image filesystem, in walk order.
public struct MergedEntry {
    /// "" for the root, else "etc/hostname" (raw bytes).
    public var path: [UInt8]
    /// As overlayfs shows it (overlay-private xattrs removed).
    public var metadata: Metadata
    /// Set when this non-directory was already met at another path (same inode).
    public var hardlinkTarget: [UInt8]?
    public var reader: any FileSystemReader

    public var displayPath: String { "/" + String(decoding: path, as: UTF8.self) }
}

extension DataRoot {
    /// The diff directories of an image, top first, from its rootfs.diff_ids chain.
    public func imageLayers(_ reference: String) throws -> (id: String, layers: [Layer]) {
        let report = inspect(countMarkers: false)
        let images = report.images
        let match = images.first { $0.id == reference || $0.id == "sha256:" + reference || $0.tags.contains(reference) }
            ?? images.first { ref in
                let short = reference.hasPrefix("sha256:") ? String(reference.dropFirst(7)) : reference
                return short.count >= 4 && ref.id.dropFirst(7).hasPrefix(short)
            }
        guard let image = match else {
            throw FWError(.notFound, "no image \(reference) in the data-root", path: path)
        }
        let records = layerRecords()
        var layers: [Layer] = []
        for chain in image.chainIDs.reversed() {
            guard let cache = records[chain]?.cacheID, let layer = layerDiff(cache, for: "layerdb \(chain)") else {
                throw FWError(.notFound, "layer \(chain) of image \(image.id) is missing", path: path)
            }
            layers.append(layer)
        }
        return (image.id, layers)
    }

    /// The layers of a container, top first: its rw layer, its -init layer, its image's layers
    /// (the layerdb parent chain of its mount).
    public func containerLayers(_ reference: String) throws -> (id: String, layers: [Layer]) {
        let containers = inspect(countMarkers: false).containers
        let match = containers.first { $0.id == reference || $0.name == reference || $0.name == "/" + reference }
            ?? containers.first { reference.count >= 4 && $0.id.hasPrefix(reference) }
        guard let container = match else {
            throw FWError(.notFound, "no container \(reference) in the data-root", path: path)
        }
        let mounts = "\(Self.layerdb)/mounts/\(container.id)"
        guard let mountID = text("\(mounts)/mount-id"), let rw = layerDiff(mountID, for: mounts) else {
            throw FWError(.notFound, "the rw layer of container \(container.name) is missing", path: path)
        }
        let initID = text("\(mounts)/init-id") ?? mountID + "-init"
        var layers = [rw]
        if let initLayer = layerDiff(initID, for: mounts) { layers.append(initLayer) }
        let records = layerRecords()
        var parent = text("\(mounts)/parent").flatMap { $0.isEmpty ? nil : $0 }
        var seen = Set<String>()
        while let chain = parent {
            guard seen.insert(chain).inserted, seen.count <= Self.maximumLayers else {
                throw FWError(.corrupt, "the layer chain of container \(container.name) loops", path: path)
            }
            guard let record = records[chain], let cache = record.cacheID, let layer = layerDiff(cache, for: "layerdb \(chain)") else {
                throw FWError(.notFound, "layer \(chain) of container \(container.name) is missing", path: path)
            }
            layers.append(layer)
            parent = record.parent
        }
        return (container.id, layers)
    }
}

/// The merged filesystem of overlay layers (top first), walked depth first with names sorted
/// bytewise, through `OverlayMerge` (the one overlayfs implementation). Whiteouts and opaque
/// markers never appear; hardlinks are reported by inode identity.
public struct MergedWalk: Sequence, IteratorProtocol {
    private var stack: [(path: [UInt8], children: [(name: [UInt8], child: OverlayMerge.Child)], index: Int)] = []
    private var pendingRoot: MergedEntry?
    private var firstPaths: [UInt64: [UInt8]] = [:]
    private let limit = 256
    /// Unreadable entries (skipped), with their paths.
    public private(set) var problems: [String] = []

    public init(layers: [Layer]) throws {
        guard let top = layers.first else { throw FWError(.notFound, "no layers to merge") }
        let meta = OverlayMerge.visible(try top.reader.metadata(of: top.inode))
        pendingRoot = MergedEntry(path: [], metadata: meta, hardlinkTarget: nil, reader: top.reader)
        push(path: [], layers: layers)
    }

    private mutating func push(path: [UInt8], layers: [Layer]) {
        var found: [String] = []
        let children = OverlayMerge.children(of: layers) { what, error in
            found.append("/\(String(decoding: path, as: UTF8.self)): \(what): \(FWError(error).description)")
        }
        problems += found
        stack.append((path, children, 0))
    }

    public mutating func next() -> MergedEntry? {
        if let root = pendingRoot {
            pendingRoot = nil
            return root
        }
        while var frame = stack.popLast() {
            guard frame.index < frame.children.count else { continue }
            let (name, child) = frame.children[frame.index]
            frame.index += 1
            stack.append(frame)
            let path = frame.path.isEmpty ? name : frame.path + [0x2F] + name
            switch child {
            case .directory(let layers, let meta):
                if stack.count >= limit {
                    problems.append("/\(String(decoding: path, as: UTF8.self)): deeper than \(limit) directories; not descended")
                } else {
                    push(path: path, layers: layers)
                }
                return MergedEntry(path: path, metadata: OverlayMerge.visible(meta), hardlinkTarget: nil, reader: layers[0].reader)
            case .file(let layer, let entry, let meta):
                var target: [UInt8]?
                if meta.linkCount > 1 {
                    if let first = firstPaths[entry.inode] { target = first } else { firstPaths[entry.inode] = path }
                }
                return MergedEntry(path: path, metadata: OverlayMerge.visible(meta), hardlinkTarget: target, reader: layer.reader)
            }
        }
        return nil
    }
}

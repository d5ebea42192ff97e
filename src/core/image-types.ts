// bib's disk image types: the words the inventory (arches.<arch>.types), the target kinds (which
// type each consumes) and the builder (which outputs it fetches) share.

/** bib's disk image types that the farm can fetch and hand to uploaders. */
export const IMAGE_TYPES = ['ami', 'raw', 'qcow2', 'vmdk', 'vhd', 'gce'] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];

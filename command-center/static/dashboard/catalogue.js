// Names from the catalogue (GET /catalogue) for the codes the read models carry, so the
// screens speak of "Illegal dumping" rather than E0102.

import { get } from "/static/common/api.js";

export class Catalogue {
  constructor(data) {
    this.data = data || {};
    const index = (list) => new Map((list || []).map((item) => [item.code, item]));
    this.categories = index(this.data.case_categories);
    this.departments = index(this.data.departments);
    this.kinds = index(this.data.resource_kinds);
    this.topics = index(this.data.hotline_topics);
    this.incidentCategories = index(this.data.incident_categories);
  }

  static async load() {
    try {
      return new Catalogue(await get("/catalogue"));
    } catch {
      return new Catalogue({});
    }
  }

  categoryName(code) { return this.categories.get(code)?.name || code || ""; }
  topicName(code) { return this.topics.get(code)?.name || code || ""; }
  resourceKindName(code) { return this.kinds.get(code)?.name || code || ""; }
  resourceKinds() { return [...this.kinds.values()]; }
  departmentName(code) { return this.departments.get(code)?.name || code || ""; }

  incidentTypeName(category, type) {
    const cat = this.incidentCategories.get(category);
    const typeName = cat?.types?.find((t) => t.code === type)?.name;
    return [cat?.name || category, typeName || type].filter(Boolean).join(" · ");
  }

  /** [code, name] pairs of the departments a case or ticket can go to. */
  departmentOptions() {
    return [...this.departments.values()].filter((d) => d.kind !== "centre").map((d) => [d.code, d.name]);
  }
}

// Workflow pages: a verdict form opens when its cell is clicked (keeps the alerts table short);
// a customer picked from the churned list fills in the churn date of the exit form.
(function () {
  "use strict";
  document.querySelectorAll("td.verdict").forEach(function (cell) {
    var form = cell.querySelector("form.wf-verdict");
    if (!form) { return; }
    var open = document.createElement("button");
    open.type = "button";
    open.className = "small wf-judge";
    open.textContent = "Judge";
    open.addEventListener("click", function () { form.classList.add("open"); open.remove(); });
    cell.insertBefore(open, form);
  });
  var customer = document.querySelector("#exit-form input[name=customer_id]");
  var churned = document.querySelector("#exit-form input[name=churned_at]");
  if (customer && churned) {
    customer.addEventListener("change", function () {
      var option = document.querySelector('#churned-customers option[value="' + CSS.escape(customer.value) + '"]');
      if (option && !churned.value) { churned.value = option.dataset.churned; }
    });
  }
})();
